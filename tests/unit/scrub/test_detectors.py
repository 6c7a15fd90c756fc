"""Detectors on free text: formats, boundaries, context in both directions."""
from __future__ import annotations

import pytest

from swarm.scrub import Scrubber, detect
from swarm.scrub.context import key_words

from .helpers import AADHAAR, AADHAAR2, AMEX, DISCOVER, KEY, MC, MC2, RUPAY, VISA, luhn_break


def types(text: str) -> list[tuple[str, str]]:
    return [(s.type, text[s.start:s.end]) for s in detect(text)]


def spaced(num: str, sep: str = " ") -> str:
    if len(num) == 15:
        return sep.join([num[:4], num[4:10], num[10:]])
    return sep.join(num[i:i + 4] for i in range(0, len(num), 4))


# ------------------------------------------------------------------ PAN
@pytest.mark.parametrize("num", [VISA, MC, MC2, AMEX, RUPAY, DISCOVER])
@pytest.mark.parametrize("sep", ["", " ", "-"])
def test_pan_formats(num: str, sep: str) -> None:
    val = spaced(num, sep) if sep else num
    assert types(f"card {val} was declined") == [("PAN", val)]


@pytest.mark.parametrize("where", ["https://pay.x.co/v2/cards/{}/verify?t=1", "?card_number={}&amount=10",
                                   '{{"pan": "{}"}}', "({})", "card:{}."])
def test_pan_in_urls_and_punctuation(where: str) -> None:
    assert [t for t, _ in types(where.format(VISA))] == ["PAN"]


@pytest.mark.parametrize("text", [
    f"ref {luhn_break(VISA)} ok",                 # Luhn fails
    f"ref {spaced(luhn_break(MC))} ok",
    "drained at 1746260688474; ok",               # epoch ms passing nothing
    "ts 1749153715160",
    f"id ORD{VISA} x",                            # glued to letters
    f"hash {VISA}abc",
    "masked **** **** **** 4242 and 411111******1111 and XXXX-XXXX-XXXX-0796",
    f"v{VISA[:4]}.{VISA[4:8]}",
])
def test_pan_negatives(text: str) -> None:
    assert [t for t, _ in types(text) if t == "PAN"] == []


# ------------------------------------------------------------------ Aadhaar
@pytest.mark.parametrize("fmt", ["{a} {b} {c}", "{a}-{b}-{c}", "{a}{b}{c}"])
def test_aadhaar_formats(fmt: str) -> None:
    val = fmt.format(a=AADHAAR[:4], b=AADHAAR[4:8], c=AADHAAR[8:])
    assert types(f"my aadhaar is {val} ok") == [("AADHAAR", val)]


def test_aadhaar_devanagari() -> None:
    deva = AADHAAR2.translate(str.maketrans("0123456789", "०१२३४५६७८९"))
    val = f"{deva[:4]} {deva[4:8]} {deva[8:]}"
    spans = detect(f"मेरा आधार {val} है")
    assert [s.type for s in spans] == ["AADHAAR"]
    assert spans[0].norm == AADHAAR2


def test_aadhaar_negatives() -> None:
    bad = AADHAAR[:-1] + str((int(AADHAAR[-1]) + 1) % 10)
    assert types(f"batch {bad}") == []
    assert types("timestamp_compact 202604150930") == []
    # plain 12 digits passing Verhoeff but next to byte-count words: not PII
    assert types(f"wrote {AADHAAR} bytes") == []
    assert types(f"size_bytes={AADHAAR}") == []
    assert types("aadhaar XXXX XXXX 1234 and ********4201") == []


# ------------------------------------------------------------------ SSN
@pytest.mark.parametrize("val", ["536-22-4111", "536 22 4111"])
def test_ssn_separated(val: str) -> None:
    assert types(f"my number {val} thanks") == [("SSN", val)]


@pytest.mark.parametrize("text", ["SSN 536224111, DOB on file", "social security number: 536224111",
                                  "My social security no. is 536224111 - typed"])
def test_ssn_bare_needs_context(text: str) -> None:
    assert [t for t, _ in types(text)] == ["SSN"]


@pytest.mark.parametrize("text", ["seed=536224111", "439653726 requests rerouted", "tokens 536224111",
                                  "order OD536224111", "666-22-4111", "123-45-6789", "078-05-1120",
                                  "SSN ***-**-6789", "SSN 536224111 bytes"])
def test_ssn_negatives(text: str) -> None:
    assert [t for t, _ in types(text) if t == "SSN"] == []


# ------------------------------------------------------------------ email
@pytest.mark.parametrize("val", ["a.b@example.com", "first.last+tag@gmail.com", "x@cse.iitb.ac.in",
                                 "SNEHA@REDIFFMAIL.COM", "Aarav.Das@Aol.com", "ops-team_1@corp.example.io"])
def test_email_plain(val: str) -> None:
    assert types(f"mail {val}.") == [("EMAIL", val)]


def test_email_contexts() -> None:
    assert types("[x](mailto:a.b@ex.com)") == [("EMAIL", "a.b@ex.com")]
    assert types("Jane Doe <jane@ex.org>") == [("EMAIL", "jane@ex.org")]
    assert types("https://x.io/c?email=l.garcia@fintrail.co&limit=2") == [("EMAIL", "l.garcia@fintrail.co")]
    assert types("https://x.io/s?email=marcus%40alumni.x.edu.in") == [("EMAIL", "marcus%40alumni.x.edu.in")]


@pytest.mark.parametrize("text", ["pin react@18.2.0 and @types/node@20.1.4", "vite@4.18.14",
                                  "registry.local/trainer@sha256:95c4fccf4c0b", "git@github.com:org/repo.git",
                                  "ssh://deploy@host/path", "@angular/core@16.15.5"])
def test_email_negatives(text: str) -> None:
    assert types(text) == []


def test_email_norm_is_lowercase() -> None:
    assert detect("A.B@EX.COM")[0].norm == "a.b@ex.com"
    assert detect("a.b%40ex.com")[0].norm == "a.b@ex.com"


# ------------------------------------------------------------------ phone
@pytest.mark.parametrize("val", [
    "+91 98765 43210", "+919876543210", "+91-98765-43210", "09876543210", "0091 9876543210",
    "98765 43210", "+91 80 4123 4567", "011-23456789",
    "(415) 555-2671", "+1-415-555-2671", "415.555.2671", "415-555-2671", "+1 415 555 2671",
    "+1 (415) 555-2671", "+14155552671", "1-415-555-2671",
    "+44 20 7946 0958", "+44 7911 123456", "07911 123456",
    "+49 30 1233 9477", "+65 8787 6236", "+971 50 047 4158", "+61 8 8408 4217",
])
def test_phone_formats(val: str) -> None:
    found = types(f"reach me at {val} today")
    assert [t for t, _ in found] == ["PHONE"], found
    # the subscriber number is inside the replaced span
    s = detect(f"reach me at {val} today")[0]
    assert f"reach me at {val} today"[s.end - 4:s.end] == val[-4:]


def test_phone_keeps_country_code() -> None:
    s = Scrubber(KEY)
    out = s.scrub_text("call +91 98765 43210")
    assert out.startswith("call +91 [PHONE:")
    assert s.scrub_text("0091 9876543210").startswith("0091 [PHONE:")


def test_phone_percent_encoded() -> None:
    text = "https://h.io/otp/send?phone=%2B91%2096985%2019730&channel=sms"
    assert [t for t, _ in types(text)] == ["PHONE"]


def test_phone_same_token_across_formats() -> None:
    s = Scrubber(KEY)
    a = s.scrub_text("+91 98765 43210")
    b = s.scrub_text("09876543210")
    c = s.scrub_text("call 9876543210")
    tok = a.split(" ", 1)[1]
    assert b == tok and c == "call " + tok


@pytest.mark.parametrize("text", ["Aap mujhe 9939007938 pe call kar sakte ho", "mobile 6276672000.",
                                  "mera number 7317985327 hai", "UIDAI se OTP 9868246922 pe nahi aa raha",
                                  "मेरा मोबाइल नंबर ८७९६१९४८९३ है", "I'll call you at 7951612468 within 30 minutes"])
def test_phone_bare10_with_context(text: str) -> None:
    assert [t for t, _ in types(text)] == ["PHONE"]


@pytest.mark.parametrize("text", ["seed=8763104394", "total tokens 9819207119.", "Peak memory 8388941487 bytes",
                                  "created 1749594476", "count 7440504232", "lr 0.9876543210", "at 9876543210"])
def test_phone_bare10_without_context(text: str) -> None:
    assert types(text) == []


def test_context_window_stays_on_its_line() -> None:
    assert types("please call me\n9876543210 bytes") == []
    assert types("call me on 9876543210\nbatch 12") == [("PHONE", "9876543210")]


def test_json_key_context_both_ways() -> None:
    assert [s.type for s in detect("9876543210", key_words("phone"))] == ["PHONE"]
    assert [s.type for s in detect("536224111", key_words("ssn"))] == ["SSN"]
    assert detect("9876543210", key_words("count")) == []
    assert detect(AADHAAR, key_words("size_bytes")) == []
    assert [s.type for s in detect(AADHAAR, key_words("aadhaar"))] == ["AADHAAR"]


@pytest.mark.parametrize("text", [
    "2026-04-15", "15/04/2026", "04/15/2026", "15-Apr-2026", "2026-04-15T09:30:00.123Z",
    "v2.14.3", "2.3.1+cu121", "0.4.0rc1", "192.168.100.200", "2001:db8:4c6:a599::8180",
    "8c36a6bd-c933-473a-9445-f22be0e64d5b", "5cbd9c1f2a3b", "0.9876543210", "$49.99", "exp: 09/28",
    "/data/run-20240101/ckpt_000123456.pt", "Your OTP is 367439", "latency_ms 412.7",
])
def test_hard_negatives_untouched(text: str) -> None:
    assert types(text) == []


def test_tokens_are_not_candidates() -> None:
    s = Scrubber(KEY)
    once = s.scrub_text(f"card {VISA} mail a@b.co phone +91 98765 43210 ssn 536-22-4111 aadhaar {AADHAAR}")
    assert "[PAN:" in once and "[EMAIL:" in once and "[PHONE:" in once and "[SSN:" in once
    assert s.scrub_text(once) == once
    assert detect(once) == []


def test_subruns_split_at_spaces() -> None:
    assert types("call 98765 43210 2 times") == [("PHONE", "98765 43210")]


# ------------------------------------------------------------------ regressions
@pytest.mark.parametrize("text", [
    "+91 98765 43210 1749153715160 (415) 555-2671",  # found by hypothesis: the US number was missed on pass 1
    "call 98765 43210 (415) 555-2671 x",
])
def test_bracketed_number_after_another_cluster(text: str) -> None:
    found = types(text)
    assert ("PHONE", "(415) 555-2671") in found
    s = Scrubber(KEY)
    once = s.scrub_text(text)
    assert s.scrub_text(once) == once
