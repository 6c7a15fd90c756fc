"""Check-digit and numbering rules, straight from the entity definitions."""
from __future__ import annotations

import pytest

from swarm.scrub import checksums as cs


def test_luhn_known_values() -> None:
    assert cs.luhn_ok("4111111111111111")
    assert cs.luhn_ok("79927398713")
    assert not cs.luhn_ok("4111111111111112")
    assert not cs.luhn_ok("79927398710")


def test_verhoeff_known_values() -> None:
    assert cs.verhoeff_ok("2363")          # textbook: check digit of 236 is 3
    assert not cs.verhoeff_ok("2364")
    for bad in range(10):                  # exactly one check digit is valid
        ok = [d for d in "0123456789" if cs.verhoeff_ok("23412341234" + d)]
        assert len(ok) == 1, bad


@pytest.mark.parametrize(
    ("digits", "brand"),
    [
        ("4111111111111111", "visa"),
        ("4222222222222", "visa"),
        ("5105105105105100", "mastercard"),
        ("2221000000000009", "mastercard"),
        ("2720990000000007", "mastercard"),
        ("378282246310005", "amex"),
        ("341111111111111", "amex"),
        ("6011111111111117", "discover"),
        ("6445644564456445", "discover"),
        ("6521000000000000", "rupay"),
        ("6070000000000000", "rupay"),
        ("5081000000000000", "rupay"),
        ("8172000000000000", "rupay"),
        ("8200000000000000", "rupay"),
    ],
)
def test_pan_brand_prefixes(digits: str, brand: str) -> None:
    assert cs.pan_brand(digits) == brand


@pytest.mark.parametrize("digits", ["1749153715160", "3782822463100050", "371449635398431000",
                                    "5605105105105100", "2220000000000000", "2721000000000000",
                                    "9111111111111111", "411111111111111"])
def test_pan_brand_rejects(digits: str) -> None:
    assert cs.pan_brand(digits) is None


def test_pan_ok_needs_luhn() -> None:
    assert cs.pan_ok("4111111111111111")
    assert not cs.pan_ok("4111111111111121")


def _aadhaar(body: str) -> str:
    return next(body + d for d in "0123456789" if cs.verhoeff_ok(body + d))


def test_aadhaar_rules() -> None:
    good = _aadhaar("23412341234")
    assert cs.aadhaar_ok(good)
    assert not cs.aadhaar_ok(_aadhaar("13412341234"))      # first digit 0/1
    assert not cs.aadhaar_ok(_aadhaar("03412341234"))
    assert not cs.aadhaar_ok(good[:-1] + str((int(good[-1]) + 1) % 10))
    assert not cs.aadhaar_ok(good[:11])
    # a Verhoeff-valid palindrome is not an Aadhaar
    pal = next(p for p in (f"2{m:05d}"[:6] for m in range(100000))
               if cs.verhoeff_ok(p + p[::-1]))
    assert cs.verhoeff_ok(pal + pal[::-1])
    assert not cs.aadhaar_ok(pal + pal[::-1])


@pytest.mark.parametrize(("digits", "ok"), [
    ("001010001", True), ("899999999", True), ("536224111", True),
    ("000123456", False), ("666123456", False), ("900123456", False), ("999123456", False),
    ("123001234", False), ("123450000", False),
    ("078051120", False), ("219099999", False), ("123456789", False),
    ("12345678", False),
])
def test_ssn_rules(digits: str, ok: bool) -> None:
    assert cs.ssn_ok(digits) is ok


def test_ascii_digits_maps_devanagari() -> None:
    assert cs.ascii_digits("९८७६५ ४३२१०") == "98765 43210"
    assert cs.ascii_digits("abc") == "abc"


def test_nanp() -> None:
    assert cs.nanp_ok("4155552671")
    assert not cs.nanp_ok("1155552671")
    assert not cs.nanp_ok("4151552671")
