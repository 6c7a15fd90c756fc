"""The ``scrub`` CLI command: Typer registration, stand-alone entry, key handling, report."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from swarm.cli.commands import scrub as cmd


def _app() -> typer.Typer:
    app = typer.Typer()
    cmd.register(app)

    @app.command("noop")
    def noop() -> None:  # a second command so that Typer keeps sub-command names
        pass

    return app


def test_typer_command_jsonl_with_key_file_and_report(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_bytes(b"k" * 32)
    rep = tmp_path / "rep.json"
    inp = "".join(json.dumps({"id": i, "text": f"mail u{i}@ex.com"}) + "\n" for i in range(3))
    args = ["scrub", "--format", "jsonl", "--key-file", str(key), "--report", str(rep)]
    r1 = CliRunner().invoke(_app(), args, input=inp)
    assert r1.exit_code == 0, r1.output
    lines = r1.output.splitlines()
    assert len(lines) == 3 and all(json.loads(x)["text"].startswith("mail [EMAIL:") for x in lines)
    r2 = CliRunner().invoke(_app(), args, input=inp)
    assert r2.output == r1.output                       # same key, same tokens
    assert json.loads(rep.read_text())["by_type"] == {"EMAIL": 3}


def test_env_key_and_random_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_SCRUB_KEY", "00" * 32)
    assert cmd.load_key(None) == bytes(32)
    monkeypatch.delenv("SWARM_SCRUB_KEY")
    assert cmd.load_key(None) != cmd.load_key(None)


def test_run_text_and_bad_format() -> None:
    out = io.StringIO()
    assert cmd.run("text", None, None, io.StringIO("call +91 98765 43210"), out) == 0
    assert out.getvalue().startswith("call +91 [PHONE:")
    assert cmd.run("xml", None, None, io.StringIO(""), io.StringIO()) == 2


def test_standalone_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    seen: dict[str, object] = {}

    def fake_run(fmt: str, report: object, key_file: object, jobs: int | None = None) -> int:
        seen.update(fmt=fmt, report=report, key_file=key_file, jobs=jobs)
        return 0

    monkeypatch.setattr(cmd, "run", fake_run)
    assert cmd.main(["--format", "json"]) == 0
    assert seen == {"fmt": "json", "report": None, "key_file": None, "jobs": None}
    assert cmd.main(["--jobs", "3"]) == 0
    assert seen["jobs"] == 3


def test_stream_auto_detects_jsonl_and_text() -> None:
    from swarm.scrub import Scrubber
    from swarm.scrub.stream import scrub_stream

    out = io.StringIO()
    scrub_stream(io.StringIO('\n{"e": "a@b.co"}\n{"e": 1}\n'), out, Scrubber(b"k" * 32), "auto")
    assert out.getvalue().startswith('\n{"e": "[EMAIL:') and out.getvalue().endswith('{"e": 1}\n')
    out = io.StringIO()
    scrub_stream(io.StringIO("hello a@b.co\nbye"), out, Scrubber(b"k" * 32), "auto")
    assert out.getvalue().startswith("hello [EMAIL:") and out.getvalue().endswith("\nbye")
    out = io.StringIO()
    scrub_stream(io.StringIO('{\n "e": "a@b.co"\n}'), out, Scrubber(b"k" * 32), "auto")
    assert json.loads(out.getvalue())["e"].startswith("[EMAIL:")


# ---- finding 9: short keys and 24-bit tokens ---------------------------------------------------

@pytest.mark.parametrize("key", [b"k", b"k" * 31])
def test_short_key_file_is_refused_with_exit_3(tmp_path: Path, key: bytes) -> None:
    """A 1-byte key used to be accepted: whoever guessed it could invert every token."""
    kf = tmp_path / "key"
    kf.write_bytes(key)
    out = io.StringIO()
    assert cmd.run("text", None, kf, io.StringIO("mail a@b.co"), out) == 3
    assert out.getvalue() == ""                      # nothing written before the key is checked
    r = CliRunner().invoke(_app(), ["scrub", "--key-file", str(kf)], input="mail a@b.co")
    assert r.exit_code == 3 and "[EMAIL:" not in r.output


@pytest.mark.parametrize("env", ["00", "00" * 31, "not hex"])
def test_short_or_bad_env_key_is_refused_with_exit_3(monkeypatch: pytest.MonkeyPatch, env: str) -> None:
    monkeypatch.setenv("SWARM_SCRUB_KEY", env)
    assert cmd.run("text", None, None, io.StringIO("mail a@b.co"), io.StringIO()) == 3


def test_standalone_entry_refuses_short_key(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    import subprocess
    import sys
    kf = tmp_path / "key"
    kf.write_bytes(b"x")
    p = subprocess.run([sys.executable, "-m", "swarm.cli.commands.scrub", "--key-file", str(kf)],
                       input="a@b.co", capture_output=True, text=True, check=False)
    assert p.returncode == 3, p.stderr
    assert "at least 32" in p.stderr and p.stdout == ""


def test_scrubber_refuses_short_key_everywhere() -> None:
    from swarm.errors import ConfigError
    from swarm.scrub import Scrubber
    with pytest.raises(ConfigError):
        Scrubber(b"k" * 31)


def test_tokens_carry_64_bits_and_do_not_collide_at_export_scale() -> None:
    """24-bit tokens collided with 50 % odds at ~4,800 values; 64-bit ones must not at 100,000."""
    from swarm.scrub.tokens import TOKEN_RE, Tokenizer
    t = Tokenizer(b"k" * 32)
    toks = {t.token("SSN", f"{n:09d}") for n in range(100_000)}
    assert len(toks) == 100_000
    tok = t.token("SSN", "536224111")
    assert TOKEN_RE.fullmatch(tok)
    body = tok[len("[SSN:"):-1]
    assert len(body) * 4 >= 64                       # 16 symbols of 4 bits each
    assert not any(c.isdigit() for c in body)         # never a digit run a detector could see again


def test_jobs_below_one_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from swarm.errors import ExitCode

    assert cmd.run("jsonl", None, None, io.StringIO("{}\n"), io.StringIO(), jobs=0) == int(ExitCode.USAGE)
    assert "--jobs" in capsys.readouterr().err
    assert cmd.default_jobs() >= 1
