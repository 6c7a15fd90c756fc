"""JSON-aware scrubbing: exact bytes, nested JSON, split fields, numbers, report paths."""
from __future__ import annotations

import json

from swarm.scrub import Scrubber

from .helpers import AADHAAR, KEY, VISA


def changed_outside(a: str, b: str, keep: list[str]) -> bool:
    """True if b differs from a anywhere except where a value of ``keep`` was."""
    for v in keep:
        a = a.replace(v, "\0")
    import re
    b = re.sub(r"\[(?:PAN|AADHAAR|SSN|EMAIL|PHONE):[bcdfghjklmnpqrst]{16}\]", "\0", b)
    return a != b


def test_exact_bytes_preserved_compact_and_indented() -> None:
    s = Scrubber(KEY)
    obj = {"user": {"email": "a.b@ex.com", "note": "call +91 98765 43210 now"}, "n": [1, 2.50, None],
           "ts": 1749153715160, "w": "x\ty"}
    for text in (json.dumps(obj), json.dumps(obj, indent=3), json.dumps(obj, separators=(",", ":"))):
        out = s.scrub_json(text)
        json.loads(out)
        assert "a.b@ex.com" not in out and "98765" not in out
        assert not changed_outside(text, out, ["a.b@ex.com", "98765 43210"])


def test_escaped_non_ascii_and_quotes_are_kept() -> None:
    s = Scrubber(KEY)
    obj = {"content": "मेरा मोबाइल नंबर 9876543210 है, \"quoted\" \\ slash / é"}
    for ascii_only in (True, False):
        text = json.dumps(obj, ensure_ascii=ascii_only)
        out = s.scrub_json(text)
        assert "9876543210" not in out
        assert not changed_outside(text, out, ["9876543210"])
        assert json.loads(out)["content"].startswith("मेरा मोबाइल नंबर [PHONE:")


def test_hand_escaped_string_uses_exact_offset_map() -> None:
    s = Scrubber(KEY)
    text = '{"m": "mail\\/me a@b.co \\u00e9 done"}'     # \/ is not what json.dumps writes
    out = s.scrub_json(text)
    assert out.startswith('{"m": "mail\\/me [EMAIL:') and out.endswith(' \\u00e9 done"}')


def test_nested_json_tool_arguments() -> None:
    s = Scrubber(KEY)
    args = json.dumps({"name": "X", "ssn": "536224111", "phone": "9876543210", "email": "x.y@ex.in"})
    doc = {"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": args}}]}]}
    text = json.dumps(doc)
    out = s.scrub_json(text)
    inner = json.loads(json.loads(out)["messages"][0]["tool_calls"][0]["function"]["arguments"])
    assert inner["ssn"].startswith("[SSN:") and inner["phone"].startswith("[PHONE:")
    assert inner["email"].startswith("[EMAIL:") and inner["name"] == "X"
    rep = s.report.to_dict()
    assert "$.messages[*].tool_calls[*].function.arguments.ssn" in rep["by_path"]


def test_json_numbers_become_token_strings() -> None:
    s = Scrubber(KEY)
    out = s.scrub_json('{"phone": 9876543210, "card": ' + VISA + ', "size_bytes": 9876543210}')
    obj = json.loads(out)
    assert obj["phone"].startswith("[PHONE:") and obj["card"].startswith("[PAN:")
    assert obj["size_bytes"] == 9876543210


def test_split_fields() -> None:
    s = Scrubber(KEY)
    pan4 = {"number": {"part1": VISA[:4], "part2": VISA[4:8], "part3": VISA[8:12], "part4": VISA[12:]}}
    pan2 = {"first": VISA[:8], "second": VISA[8:]}
    aad = {"aadhaar_parts": [AADHAAR[:4], AADHAAR[4:8], AADHAAR[8:]]}
    ph = {"phone": {"country_code": "+44", "number": "20 7946 0958"}}
    for obj in (pan4, pan2, aad, ph):
        out = s.scrub_json(json.dumps(obj, indent=2))
        assert json.loads(out) != obj, obj
    assert json.loads(s.scrub_json(json.dumps(ph)))["phone"]["country_code"] == "+44"
    # sibling numbers that fail the checksums stay
    neg = {"exp_month": "12", "exp_year": "2030", "a": "4111", "b": "1111", "c": "1111", "d": "1112"}
    assert s.scrub_json(json.dumps(neg)) == json.dumps(neg)


def test_invalid_json_falls_back_to_text() -> None:
    s = Scrubber(KEY)
    out = s.scrub_json('{"broken": "a.b@ex.com"')
    assert out.startswith('{"broken": "[EMAIL:')


def test_jsonl_and_auto() -> None:
    s = Scrubber(KEY)
    text = '{"a": "x.y@ex.com"}\n{"b": 1}\nnot json 9876543210 call\n'
    out = s.scrub(text)
    lines = out.split("\n")
    assert json.loads(lines[0])["a"].startswith("[EMAIL:") and lines[1] == '{"b": 1}'
    assert "[PHONE:" in lines[2] and out.endswith("\n")
    assert s.scrub("plain a.b@ex.com") == s.scrub_text("plain a.b@ex.com")
    assert s.scrub('[{"email": "a.b@ex.com"}]', "json").startswith('[{"email": "[EMAIL:')


def test_scrub_value() -> None:
    s = Scrubber(KEY)
    obj = {"phone": "9876543210", "n": 5, "list": ["a.b@ex.com", {"ssn": 536224111}], "ok": True}
    out = s.scrub_value(obj)
    assert out["phone"].startswith("[PHONE:") and out["n"] == 5 and out["ok"] is True
    assert out["list"][0].startswith("[EMAIL:") and out["list"][1]["ssn"].startswith("[SSN:")
    assert obj["phone"] == "9876543210"       # a copy
    assert s.scrub_value("mail a.b@ex.com").startswith("mail [EMAIL:")
    assert s.scrub_value(None) is None


def test_report_counts_never_values() -> None:
    s = Scrubber(KEY)
    s.scrub_json(json.dumps({"messages": [{"content": "a.b@ex.com"}, {"content": "c.d@ex.com +91 98765 43210"}]}))
    rep = s.report.to_dict()
    assert rep["by_type"] == {"EMAIL": 2, "PHONE": 1}
    assert rep["by_path"]["$.messages[*].content"]["total"] == 3
    assert "ex.com" not in json.dumps(rep) and "98765" not in json.dumps(rep)
