"""Check-digit and numbering-plan rules for the numeric PII types.

Every function takes an ASCII digit string (see :func:`ascii_digits`) and is pure.
Contracts:

* :func:`luhn_ok` - the Luhn (mod 10) check used by payment cards.
* :func:`verhoeff_ok` - the Verhoeff dihedral check used by Aadhaar.
* :func:`pan_ok` - issuer prefix + length + Luhn for the card brands in scope
  (Visa, Mastercard, Amex, RuPay, Discover).
* :func:`aadhaar_ok` - 12 digits, first digit 2-9, Verhoeff, not a palindrome.
* :func:`ssn_ok` - area 001-899 except 666, group 01-99, serial 0001-9999, and not
  one of the published sample numbers.
* :func:`nanp_ok` - a 10-digit North American number (area and exchange 2-9xx).
"""

from __future__ import annotations

__all__ = [
    "DEVANAGARI_TO_ASCII",
    "aadhaar_ok",
    "ascii_digits",
    "luhn_ok",
    "nanp_ok",
    "pan_brand",
    "pan_ok",
    "ssn_ok",
    "verhoeff_ok",
]

DEVANAGARI_TO_ASCII = str.maketrans("०१२३४५६७८९", "0123456789")

_LUHN_DOUBLE = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)

_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)

# Published / advertised sample SSNs that are never issued to a person.
_SAMPLE_SSNS = frozenset({"078051120", "219099999", "123456789"})


def ascii_digits(text: str) -> str:
    """Map Devanagari digits to ASCII; other characters are kept as they are."""
    return text if text.isascii() else text.translate(DEVANAGARI_TO_ASCII)


def luhn_ok(digits: str) -> bool:
    """True if ``digits`` (ASCII, no separators) has a valid Luhn check digit."""
    total = 0
    double = False
    for ch in reversed(digits):
        d = ord(ch) - 48
        total += _LUHN_DOUBLE[d] if double else d
        double = not double
    return total % 10 == 0


def verhoeff_ok(digits: str) -> bool:
    """True if ``digits`` (ASCII, no separators) has a valid Verhoeff check digit."""
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _VERHOEFF_D[c][_VERHOEFF_P[i % 8][ord(ch) - 48]]
    return c == 0


def pan_brand(digits: str) -> str | None:
    """The card brand whose issuer prefix and length ``digits`` has, else None.

    Visa 4 (13, 16 or 19 digits); Mastercard 51-55 and 2221-2720 (16);
    Amex 34/37 (15); RuPay 508, 6070-6073, 6521-6522, 8172-8173, 8200 (16);
    Discover 6011, 644-649, 65 (16-19).  The Luhn check is not applied here.
    """
    n = len(digits)
    if n < 13 or n > 19:
        return None
    d1 = digits[0]
    p2 = int(digits[:2])
    p3 = int(digits[:3])
    p4 = int(digits[:4])
    if d1 == "4":
        return "visa" if n in (13, 16, 19) else None
    if n == 15:
        return "amex" if p2 in (34, 37) else None
    if n == 16 and (51 <= p2 <= 55 or 2221 <= p4 <= 2720):
        return "mastercard"
    if n == 16 and (p3 == 508 or 6070 <= p4 <= 6073 or p4 in (6521, 6522, 8172, 8173, 8200)):
        return "rupay"
    if 16 <= n <= 19 and (p4 == 6011 or 644 <= p3 <= 649 or p2 == 65):
        return "discover"
    return None


def pan_ok(digits: str) -> bool:
    """True for a payment card number of an in-scope brand with a valid Luhn digit."""
    return pan_brand(digits) is not None and luhn_ok(digits)


def aadhaar_ok(digits: str) -> bool:
    """True for 12 digits, first digit 2-9, valid Verhoeff check, not a palindrome."""
    return (
        len(digits) == 12
        and digits[0] not in "01"
        and digits != digits[::-1]
        and verhoeff_ok(digits)
    )


def ssn_ok(digits: str) -> bool:
    """True for a 9-digit number that follows the SSA numbering rules."""
    if len(digits) != 9 or digits in _SAMPLE_SSNS:
        return False
    area = int(digits[:3])
    return (
        0 < area < 900
        and area != 666
        and digits[3:5] != "00"
        and digits[5:] != "0000"
    )


def nanp_ok(digits: str) -> bool:
    """True for a 10-digit NANP number: area code and exchange both start with 2-9."""
    return len(digits) == 10 and digits[0] not in "01" and digits[3] not in "01"
