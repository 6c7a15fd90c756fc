"""Value builders for tests: valid by construction from the definitions."""
from __future__ import annotations

from swarm.scrub import checksums as cs

KEY = b"0123456789abcdef0123456789abcdef"


def luhn_complete(body: str) -> str:
    return next(body + d for d in "0123456789" if cs.luhn_ok(body + d))


def aadhaar_complete(body: str) -> str:
    return next(body + d for d in "0123456789" if cs.verhoeff_ok(body + d))


def luhn_break(num: str) -> str:
    return num[:-1] + str((int(num[-1]) + 1) % 10)


VISA = luhn_complete("411111111111111")
MC = luhn_complete("545454545454545")
MC2 = luhn_complete("222300000000000")
AMEX = luhn_complete("37828224631000")
RUPAY = luhn_complete("607301234567890")
DISCOVER = luhn_complete("601100009999000")
AADHAAR = aadhaar_complete("23456789012")
AADHAAR2 = aadhaar_complete("98765432101")
