"""Deterministic synthetic PII corpus in the record format of ../shared/pii/corpus_dev.jsonl.

Written independently of the dev corpus (own templates, phrasing, field names)
so that it is a held-out check.  Every value is generated from the entity
definitions (Luhn / Verhoeff check digits, SSA rules, numbering plans) and every
gold span and hard negative is recorded at its exact offset, also when the
value sits inside a JSON string that is itself JSON (tool-call arguments).

    python bench/scrub_corpus.py --seed 7 --n 1000 --out /tmp/synth.jsonl
"""
from __future__ import annotations

import argparse
import json
import random
import string
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

DEVA = str.maketrans("0123456789", "०१२३४५६७८९")
_VD = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
       [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
       [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
       [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]
_VP = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
       [8, 9, 1, 6, 0, 4, 3, 5, 2, 7], [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
       [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8]]
_VINV = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9]


def luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def luhn_ok(num: str) -> bool:
    return luhn_digit(num[:-1]) == num[-1]


def verhoeff_digit(body: str) -> str:
    c = 0
    for i, ch in enumerate(reversed(body)):
        c = _VD[c][_VP[(i + 1) % 8][int(ch)]]
    return str(_VINV[c])


def verhoeff_ok(num: str) -> bool:
    c = 0
    for i, ch in enumerate(reversed(num)):
        c = _VD[c][_VP[i % 8][int(ch)]]
    return c == 0


# ---------------------------------------------------------------------------- pieces

@dataclass
class Piece:
    text: str
    span: dict[str, Any] | None = None     # type/form/style/core(rel)/group
    neg: dict[str, Any] | None = None      # category/confusable_with


@dataclass
class Doc:
    pieces: list[Piece] = field(default_factory=list)

    def t(self, s: str) -> Doc:
        self.pieces.append(Piece(s))
        return self

    def pii(self, s: str, typ: str, form: str, style: str, core: tuple[int, int] | None = None,
            group: int | None = None) -> Doc:
        self.pieces.append(Piece(s, {"type": typ, "form": form, "style": style,
                                     "core": core or (0, len(s)), "group": group}))
        return self

    def neg(self, s: str, category: str, conf: str | None) -> Doc:
        self.pieces.append(Piece(s, neg={"category": category, "confusable_with": conf}))
        return self

    def extend(self, other: Doc) -> Doc:
        self.pieces.extend(other.pieces)
        return self

    def escaped(self, ascii_only: bool) -> Doc:
        """The same pieces, JSON-string-escaped (to embed this doc as a string value)."""
        return Doc([Piece(json.dumps(p.text, ensure_ascii=ascii_only)[1:-1], p.span, p.neg) for p in self.pieces])

    def render(self) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
        out, spans, negs, pos = [], [], [], 0
        for p in self.pieces:
            if p.span:
                cs, ce = p.span["core"]
                sp = {"start": pos, "end": pos + len(p.text), "type": p.span["type"], "form": p.span["form"],
                      "style": p.span["style"], "core_start": pos + cs, "core_end": pos + ce}
                if p.span["group"] is not None:
                    sp["group"] = p.span["group"]
                spans.append(sp)
            if p.neg:
                negs.append({"start": pos, "end": pos + len(p.text), **p.neg})
            out.append(p.text)
            pos += len(p.text)
        return "".join(out), spans, negs


class JsonW:
    """Writes raw JSON into a Doc, compact or indented, tracking PII/negative pieces."""

    def __init__(self, doc: Doc, indent: int | None, ascii_only: bool) -> None:
        self.d, self.indent, self.ascii = doc, indent, ascii_only

    def value(self, v: Any, level: int = 0) -> None:
        d = self.d
        if isinstance(v, Piece):
            d.t('"')
            d.pieces.append(Piece(json.dumps(v.text, ensure_ascii=self.ascii)[1:-1], v.span, v.neg))
            d.t('"')
        elif isinstance(v, RawNum):
            d.pieces.append(Piece(v.text, v.span, v.neg))
        elif isinstance(v, Doc):       # a JSON document held in a string
            d.t('"')
            d.extend(v.escaped(self.ascii))
            d.t('"')
        elif isinstance(v, dict):
            self._container("{", "}", list(v.items()), level, True)
        elif isinstance(v, list):
            self._container("[", "]", [(None, x) for x in v], level, False)
        else:
            d.t(json.dumps(v, ensure_ascii=self.ascii))

    def _container(self, o: str, c: str, items: list[tuple[Any, Any]], level: int, obj: bool) -> None:
        d = self.d
        if not items:
            d.t(o + c)
            return
        d.t(o)
        for i, (k, v) in enumerate(items):
            if i:
                d.t(",")
            if self.indent is not None:
                d.t("\n" + " " * (self.indent * (level + 1)))
            elif i:
                d.t(" ")
            if obj:
                d.t(json.dumps(k, ensure_ascii=self.ascii) + ": ")
            self.value(v, level + 1)
        if self.indent is not None:
            d.t("\n" + " " * (self.indent * level))
        d.t(c)


@dataclass
class RawNum:
    text: str
    span: dict[str, Any] | None = None
    neg: dict[str, Any] | None = None


def P(s: str, typ: str, form: str, style: str, core: tuple[int, int] | None = None,
      group: int | None = None) -> Piece:
    return Piece(s, {"type": typ, "form": form, "style": style, "core": core or (0, len(s)), "group": group})


def N(s: str, category: str, conf: str | None) -> Piece:
    return Piece(s, neg={"category": category, "confusable_with": conf})


def json_doc(obj: Any, indent: int | None, ascii_only: bool) -> Doc:
    d = Doc()
    JsonW(d, indent, ascii_only).value(obj)
    return d


# ---------------------------------------------------------------------------- values

FIRST = ["Ishaan", "Meher", "Tanmay", "Ritika", "Kabir", "Nandini", "Owen", "Chloe", "Mateo", "Zoe",
         "Farhan", "Lavanya", "Siddharth", "Aditi", "Noah", "Ava", "Yusuf", "Harini", "Dev", "Priyanka"]
LAST = ["Bhatt", "Chopra", "Nair", "Kapoor", "Saxena", "Fernandes", "Walker", "Brooks", "Ramos", "Kelly",
        "Menon", "Rao", "Dutta", "Joshi", "Bennett", "Hughes", "Qureshi", "Pillai", "Ghosh", "Sethi"]
FREE = ["gmail.com", "yahoo.co.in", "outlook.com", "hotmail.com", "icloud.com", "proton.me", "rediffmail.com"]
CORP = ["lumenpay.io", "quillhealth.com", "tarangbank.in", "vantaforge.dev", "nimbuscart.co", "orchidlabs.ai"]
SUBD = ["mail.iisc.ac.in", "cs.stanford.edu", "eng.corp.vantaforge.dev", "students.du.ac.in", "hq.tarangbank.co.in"]


class Gen:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def digits(self, n: int) -> str:
        return "".join(self.r.choice(string.digits) for _ in range(n))

    # --- PAN
    def pan(self, brand: str | None = None) -> tuple[str, str]:
        r = self.r
        brand = brand or r.choice(["visa", "mastercard", "amex", "rupay", "discover"])
        if brand == "visa":
            pre, n = "4", 16
        elif brand == "mastercard":
            pre, n = r.choice([str(r.randint(51, 55)), str(r.randint(2221, 2720))]), 16
        elif brand == "amex":
            pre, n = r.choice(["34", "37"]), 15
        elif brand == "rupay":
            pre, n = r.choice(["508", str(r.randint(6070, 6073)), "6521", "6522", "8172", "8173", "8200"]), 16
        else:
            pre, n = r.choice(["6011", str(r.randint(644, 649)), "65"]), 16
        body = pre + self.digits(n - len(pre) - 1)
        return body + luhn_digit(body), brand

    def fmt_pan(self, num: str, style: str) -> str:
        if style == "plain":
            return num
        sep = " " if style == "spaced" else "-"
        if len(num) == 15:
            return sep.join([num[:4], num[4:10], num[10:]])
        return sep.join(num[i:i + 4] for i in range(0, len(num), 4))

    def luhn_fail(self) -> str:
        num, _ = self.pan(self.r.choice(["visa", "mastercard", "discover"]))
        return num[:-1] + str((int(num[-1]) + self.r.randint(1, 9)) % 10)

    # --- Aadhaar
    def aadhaar(self) -> str:
        while True:
            body = str(self.r.randint(2, 9)) + self.digits(10)
            num = body + verhoeff_digit(body)
            if num != num[::-1]:
                return num

    def verhoeff_fail(self) -> str:
        while True:
            num = str(self.r.randint(2, 9)) + self.digits(11)
            if not verhoeff_ok(num):
                return num

    # --- SSN
    def ssn(self) -> str:
        while True:
            area = self.r.randint(1, 899)
            if area != 666:
                break
        return f"{area:03d}{self.r.randint(1, 99):02d}{self.r.randint(1, 9999):04d}"

    # --- email
    def email(self, style: str) -> str:
        r = self.r
        f, last = r.choice(FIRST).lower(), r.choice(LAST).lower()
        local = r.choice([f"{f}.{last}", f"{f[0]}{last}", f"{f}_{last}{r.randint(1, 99)}", f"{last}.{f}"])
        if style == "plus":
            return f"{local}+{r.choice(['billing', 'kyc', 'news', 'x1'])}@{r.choice(FREE)}"
        if style == "subdomain":
            return f"{local}@{r.choice(SUBD)}"
        if style == "corp":
            return f"{local}@{r.choice(CORP)}"
        if style == "uppercase":
            e = f"{local}@{r.choice(FREE + CORP)}"
            return e.upper() if r.random() < 0.5 else e.title()
        return f"{local}@{r.choice(FREE)}"

    # --- phone: (text, core_start, core_end)
    def phone(self, style: str) -> tuple[str, int, int]:
        r = self.r
        mob = str(r.randint(6, 9)) + self.digits(9)
        us = str(r.randint(2, 9)) + self.digits(2) + str(r.randint(2, 9)) + self.digits(6)
        a, b, c = us[:3], us[3:6], us[6:]
        table: dict[str, tuple[str, str]] = {
            "in_intl_spaced": ("+91 ", f"{mob[:5]} {mob[5:]}"),
            "in_intl_compact": ("+91", mob),
            "in_intl_dash": ("+91-", f"{mob[:5]}-{mob[5:]}"),
            "in_0091": ("0091 ", mob),
            "in_trunk0": ("0", mob),
            "in_split5": ("", f"{mob[:5]} {mob[5:]}"),
            "in_landline_intl": ("+91 ", f"{r.choice(['22', '80', '40', '44'])} {self.digits(4)} {self.digits(4)}"),
            "in_landline_trunk": ("0", f"{r.choice(['11', '22', '33', '80'])}-{r.randint(2, 6)}{self.digits(7)}"),
            "us_paren": ("", f"({a}) {b}-{c}"),
            "us_dash": ("", f"{a}-{b}-{c}"),
            "us_dot": ("", f"{a}.{b}.{c}"),
            "us_intl_dash": ("+1-", f"{a}-{b}-{c}"),
            "us_intl_paren": ("+1 ", f"({a}) {b}-{c}"),
            "us_e164": ("+1", us),
            "us_1dash": ("1-", f"{a}-{b}-{c}"),
            "uk_london": ("+44 ", f"20 {r.randint(3, 8)}{self.digits(3)} {self.digits(4)}"),
            "uk_mobile_intl": ("+44 ", f"7{self.digits(3)} {self.digits(6)}"),
            "uk_mobile_trunk": ("0", f"7{self.digits(3)} {self.digits(6)}"),
            "intl_de": ("+49 ", f"{r.choice(['30', '89', '40'])} {self.digits(4)} {self.digits(4)}"),
            "intl_sg": ("+65 ", f"{r.choice('689')}{self.digits(3)} {self.digits(4)}"),
            "intl_ae": ("+971 ", f"5{r.randint(0, 8)} {self.digits(3)} {self.digits(4)}"),
            "intl_au": ("+61 ", f"4{self.digits(2)} {self.digits(3)} {self.digits(3)}"),
        }
        pre, rest = table[style]
        return pre + rest, len(pre), len(pre) + len(rest)

    # --- negatives
    def epoch_ms(self) -> str:
        return str(self.r.randint(1_700_000_000_000, 1_790_000_000_000))

    def epoch_s(self) -> str:
        return str(self.r.randint(1_700_000_000, 1_790_000_000))

    def iso(self) -> str:
        r = self.r
        return (f"202{r.randint(4, 6)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T"
                f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}"
                + r.choice(["Z", ".123Z", "+05:30", ""]))

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.r.getrandbits(128)))

    def hexs(self, n: int) -> str:
        while True:
            h = "".join(self.r.choice("0123456789abcdef") for _ in range(n))
            if not h.isdigit():
                return h


PHONE_STYLES = ["in_intl_spaced", "in_intl_compact", "in_intl_dash", "in_0091", "in_trunk0", "in_split5",
                "in_landline_intl", "in_landline_trunk", "us_paren", "us_dash", "us_dot", "us_intl_dash",
                "us_intl_paren", "us_e164", "us_1dash", "uk_london", "uk_mobile_intl", "uk_mobile_trunk",
                "intl_de", "intl_sg", "intl_ae", "intl_au"]
EMAIL_STYLES = ["plain", "plus", "subdomain", "uppercase", "corp"]


# ---------------------------------------------------------------------------- templates

class Corpus:
    def __init__(self, seed: int) -> None:
        self.g = Gen(seed)
        self.r = self.g.r
        self.group = 0
        self.deva_ok = True   # Devanagari digits never end up inside \uXXXX escapes

    # PII pieces for sentences / JSON values
    def phone_piece(self, form: str, style: str | None = None) -> Piece:
        style = style or self.r.choice(PHONE_STYLES)
        s, cs, ce = self.g.phone(style)
        return P(s, "PHONE", form, style, (cs, ce))

    def email_piece(self, form: str) -> Piece:
        style = self.r.choice(EMAIL_STYLES)
        return P(self.g.email(style), "EMAIL", form, style)

    def pan_piece(self, form: str) -> Piece:
        num, brand = self.g.pan()
        style = self.r.choice(["plain", "spaced", "dashed"])
        return P(self.g.fmt_pan(num, style), "PAN", form, f"{brand}/{style}")

    def aadhaar_piece(self, form: str, allow_deva: bool = False) -> Piece:
        num = self.g.aadhaar()
        style = self.r.choice(["plain", "spaced", "dashed"])
        s = num if style == "plain" else (" " if style == "spaced" else "-").join([num[:4], num[4:8], num[8:]])
        if allow_deva and self.deva_ok and self.r.random() < 0.3:
            return P(s.translate(DEVA), "AADHAAR", form, "devanagari_" + style)
        return P(s, "AADHAAR", form, style)

    def ssn_piece(self, form: str) -> Piece:
        n = self.g.ssn()
        style = self.r.choice(["dashed", "spaced"])
        sep = "-" if style == "dashed" else " "
        return P(f"{n[:3]}{sep}{n[3:5]}{sep}{n[5:]}", "SSN", form, style)

    def sentence(self) -> Doc:
        """One chat/log sentence with PII and distractors (free text)."""
        r, g = self.r, self.g
        d = Doc()
        k = r.randrange(12)
        if k == 0:
            d.t("Hi, please update my contact to ").pii(*self._pp(self.phone_piece("sentence"))).t(" - thanks!")
        elif k == 1:
            mob = str(r.randint(6, 9)) + g.digits(9)
            lead = r.choice(["You can ring me on ", "my mobile is ", "WhatsApp pe message karo: ",
                             "Mera phone number hai ", "please call back on "])
            d.t(lead).pii(mob, "PHONE", "sentence", "in_bare10")
        elif k == 2:
            d.t("Send the invoice to ").pii(*self._pp(self.email_piece("sentence"))).t(" and cc ").pii(
                *self._pp(self.email_piece("sentence"))).t(".")
        elif k == 3:
            d.t("Charge failed for card ").pii(*self._pp(self.pan_piece("sentence"))).t(" at ").neg(
                g.iso(), "iso_timestamp", None).t(", retry id ").neg(g.uuid(), "uuid", None)
        elif k == 4:
            d.t("KYC: my UID is ").pii(*self._pp(self.aadhaar_piece("sentence", True))).t(", please verify")
        elif k == 5:
            d.t("For payroll, my SSN is ").pii(*self._pp(self.ssn_piece("sentence"))).t(".")
        elif k == 6:
            n = g.ssn()
            d.t(r.choice(["Social Security number ", "SSN# ", "my ssn: "])).pii(n, "SSN", "sentence", "plain_ctx")
        elif k == 7:
            d.t("Run finished: seed=").neg(str(r.randint(100_000_000, 999_999_999)), "int_hyperparam", "SSN").t(
                ", wrote ").neg(str(r.randint(6_000_000_000, 9_999_999_999)), "int_bytes", "PHONE").t(
                " bytes at ").neg(g.epoch_ms(), "epoch_ms", "PAN").t(".")
        elif k == 8:
            d.t("Deploy ").neg("v" + f"{r.randint(1, 9)}.{r.randint(0, 30)}.{r.randint(0, 30)}", "version", None).t(
                " from ").neg(g.hexs(40), "git_sha", None).t(" on ").neg(
                f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}", "ipv4", None).t(
                "; accuracy ").neg(f"0.{g.digits(10)}", "float_metric", None)
        elif k == 9:
            d.t("Card on file ").neg("XXXX XXXX XXXX " + g.digits(4), "masked_pan", "PAN").t(", SSN ").neg(
                "***-**-" + g.digits(4), "masked_ssn", "SSN").t(", code ").neg(g.digits(6), "otp", None)
        elif k == 10:
            d.t("Bump ").neg(f"@babel/core@{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 20)}", "npm_spec",
                             "EMAIL").t(" and ").neg(f"zod@{r.randint(1, 4)}.{r.randint(0, 20)}.{r.randint(0, 9)}",
                                                     "npm_spec", "EMAIL")
        else:
            d.t("Ref ").neg(g.luhn_fail(), "luhn_fail_16", "PAN").t(" batch ").neg(g.verhoeff_fail(),
                                                                               "verhoeff_fail_12", "AADHAAR")
        return d

    @staticmethod
    def _pp(p: Piece) -> tuple[str, str, str, str, tuple[int, int]]:
        assert p.span
        return p.text, p.span["type"], p.span["form"], p.span["style"], p.span["core"]

    def text_record(self) -> Doc:
        d = Doc()
        for _ in range(self.r.randint(3, 7)):
            who = self.r.choice(["cust", "bot", "ops"])
            d.t(f"<{who}> ").extend(self.sentence()).t("\n")
        return d

    def kyc_event(self) -> dict[str, Any]:
        g, r = self.g, self.r
        contact: dict[str, Any] = {"mail": self.email_piece("json_value"), "mobile": self.phone_piece("json_value")}
        if r.random() < 0.5:
            mob = str(r.randint(6, 9)) + g.digits(9)
            contact["alt_phone"] = P(mob, "PHONE", "json_value", "in_bare10")
        obj: dict[str, Any] = {
            "kind": "kyc.verified", "occurred": N(g.iso(), "iso_timestamp", None),
            "trace": N(g.uuid(), "uuid", None),
            "subject": {"display_name": N(f"{r.choice(FIRST)} {r.choice(LAST)}", "person_name_oos", None),
                        "contact": contact, "uid": self.aadhaar_piece("json_value")},
            "stats": {"payload_bytes": RawNum(str(r.randint(100_000_000_000, 999_999_999_999)),
                                              neg={"category": "int_bytes", "confusable_with": "AADHAAR"}),
                      "took_ms": RawNum(f"{r.randint(1, 900)}.{r.randint(0, 9)}"),
                      "epoch": RawNum(g.epoch_s(), neg={"category": "epoch_s", "confusable_with": "PHONE"}),
                      "digest": N(g.hexs(64), "hex_hash", None)},
        }
        if r.random() < 0.5:
            obj["ssn"] = P(g.ssn(), "SSN", "json_value", "plain_ctx")
        return obj

    def checkout_event(self) -> dict[str, Any]:
        g, r = self.g, self.r
        num, brand = g.pan()
        obj: dict[str, Any] = {"type": "checkout", "ts_ms": RawNum(g.epoch_ms(), neg={"category": "epoch_ms",
                                                                                      "confusable_with": "PAN"})}
        v = r.randrange(4)
        self.group += 1
        if v == 0:
            q = r.choice([4, 2])
            step = len(num) // q
            parts = [num[i * step:(i + 1) * step] if i < q - 1 else num[i * step:] for i in range(q)]
            obj["pan_parts"] = {f"seg{i + 1}": P(p, "PAN", "split_fields", f"{brand}/split", group=self.group)
                                for i, p in enumerate(parts)}
        elif v == 1:
            a = g.aadhaar()
            obj["uid_chunks"] = [P(a[i:i + 4], "AADHAAR", "split_fields", "split", group=self.group)
                                 for i in (0, 4, 8)]
        elif v == 2:
            style = r.choice(["uk_london", "intl_de", "in_landline_intl"])
            s, cs, _ = g.phone(style)
            obj["callback"] = {"dial_code": s[:cs].strip().rstrip("-"),
                               "number": P(s[cs:], "PHONE", "split_fields", style, group=self.group)}
        else:
            style = r.choice(["plain", "spaced", "dashed"])
            obj["card"] = {"pan": P(g.fmt_pan(num, style), "PAN", "json_value", f"{brand}/{style}"),
                           "masked": N(num[:6] + "******" + num[-4:], "masked_pan", "PAN"),
                           "last4": N(num[-4:], "last4", None)}
        obj["return_url"] = N("https://shop.example.net/pay/return?sess=" + g.hexs(32), "url", None)
        if r.random() < 0.5:
            e = g.email(r.choice(EMAIL_STYLES))
            enc = e.replace("@", "%40").replace("+", "%2B")
            obj["receipt_link"] = self._url_piece("https://mail.example.net/r?to=", enc, "EMAIL", "url_encoded")
        if r.random() < 0.4:
            s, _cs, _ce = g.phone("in_intl_spaced")
            enc = s.replace("+", "%2B").replace(" ", "%20")
            core_s = enc.index("%20") + 3
            obj["sms_hook"] = self._url_piece("https://sms.example.net/v1/send?msisdn=", enc, "PHONE", "url_encoded",
                                              (core_s, len(enc)), "in_intl_spaced")
        return obj

    def _url_piece(self, prefix: str, value: str, typ: str, form: str, core: tuple[int, int] | None = None,
                   style: str = "plain") -> Doc:
        return Doc().t(prefix).pii(value, typ, form, style, core)

    def tool_call(self) -> dict[str, Any]:
        g, r = self.g, self.r
        args: dict[str, Any] = {"customer": f"{r.choice(FIRST)} {r.choice(LAST)}",
                                "email": self.email_piece("json_value"),
                                "phone": self.phone_piece("json_value"),
                                "request_id": N(g.uuid(), "uuid", None)}
        if r.random() < 0.4:
            args["ssn"] = self.ssn_piece("json_value")
        if r.random() < 0.4:
            args["tax"] = {"ssn": P(g.ssn(), "SSN", "json_value", "plain_ctx")}
        inner = json_doc(args, r.choice([None, 2]), r.random() < 0.5)
        return {"role": "assistant", "tool_calls": [{"id": "call_" + g.hexs(12), "type": "function",
                                                     "function": {"name": "crm_upsert", "arguments": inner}}]}

    def conversation(self) -> dict[str, Any]:
        msgs: list[Any] = [{"role": "system", "content": "You are a helpful billing assistant."}]
        for _ in range(self.r.randint(2, 5)):
            if self.r.random() < 0.3:
                msgs.append(self.tool_call())
            else:
                msgs.append({"role": self.r.choice(["user", "assistant"]), "content": self.sentence()})
        return {"session": self.g.uuid(), "started": N(self.g.iso(), "iso_timestamp", None), "messages": msgs}

    def record(self, i: int) -> dict[str, Any]:
        r = self.r
        kind = r.choice(["text", "kyc", "checkout", "conversation", "jsonl"])
        ascii_only = r.random() < 0.35
        self.deva_ok = not ascii_only or kind == "text"
        indent = r.choice([None, None, 2])
        if kind == "text":
            doc, fmt = self.text_record(), "text"
        elif kind == "jsonl":
            doc, fmt = Doc(), "jsonl"
            for _ in range(r.randint(2, 6)):
                line = {"at": RawNum(self.g.epoch_ms(), neg={"category": "epoch_ms", "confusable_with": "PAN"}),
                        "from": r.choice(["customer", "agent"]), "body": self.sentence()}
                doc.extend(json_doc(line, None, ascii_only)).t("\n")
        else:
            obj = {"kyc": self.kyc_event, "checkout": self.checkout_event, "conversation": self.conversation}[kind]()
            doc, fmt = json_doc(obj, indent, ascii_only), "json"
        text, spans, negs = doc.render()
        return {"id": f"syn-{i:05d}", "kind": kind, "scenario": "synthetic", "format": fmt, "lang": "en",
                "json_escaped_non_ascii": ascii_only and fmt != "text", "text": text, "spans": spans,
                "negatives": negs}


def generate(seed: int = 7, n: int = 1000) -> list[dict[str, Any]]:
    """``n`` records, deterministic for ``seed``."""
    c = Corpus(seed)
    return [c.record(i) for i in range(n)]


def check(records: list[dict[str, Any]]) -> None:
    """Sanity checks of the generator itself (offsets, checksums, JSON validity)."""
    for rec in records:
        t = rec["text"]
        if rec["format"] == "json":
            json.loads(t)
        elif rec["format"] == "jsonl":
            for line in t.splitlines():
                json.loads(line)
        for s in rec["spans"]:
            v = t[s["start"]:s["end"]]
            d = "".join(ch for ch in v.translate(str.maketrans("०१२३४५६७८९", "0123456789")) if ch.isdigit())
            if s["type"] == "PAN" and s["form"] != "split_fields":
                assert luhn_ok(d), (rec["id"], v)
            if s["type"] == "AADHAAR" and s["form"] != "split_fields":
                assert len(d) == 12 and verhoeff_ok(d), (rec["id"], v)
            if s["type"] == "EMAIL":
                assert "@" in v or "%40" in v, (rec["id"], v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--out", default="-")
    a = ap.parse_args()
    recs = generate(a.seed, a.n)
    check(recs)
    f = sys.stdout if a.out == "-" else open(a.out, "w", encoding="utf-8")
    for rec in recs:
        f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    if f is not sys.stdout:
        f.close()


if __name__ == "__main__":
    main()
