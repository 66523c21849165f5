"""The ``pooldaemon`` command, called in-process and as the installed console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pooldaemon import __version__
from pooldaemon.cli import main
from pooldaemon.spec._schema import pool_json_schema_text

ROOT = Path(__file__).parents[1]
EXAMPLES = [ROOT / "config" / "pool.yaml", *sorted((ROOT / "config" / "examples").glob("*.yaml"))]
VALID = "version: 1\nproviders:\n  - id: ollama\n    format: ollama\n"


def test_validate_shipped_configs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", *map(str, EXAMPLES)]) == 0
    out = capsys.readouterr()
    assert out.out.count(": valid (") == len(EXAMPLES)
    assert " error" not in out.err


def test_validate_reports_every_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(VALID)
    bad1 = tmp_path / "bad1.yaml"
    bad1.write_text("version: 1\nrouting: {mode: clod}\n")
    bad2 = tmp_path / "bad2.yaml"
    bad2.write_text("version: 1\nproviders: [{id: A}]\n")
    assert main(["validate", str(bad1), str(good), str(bad2)]) == 1
    out = capsys.readouterr()
    assert f"{good}: valid (1 providers" in out.out
    assert out.err.splitlines() == [
        f"{bad1}:2:17: routing.mode: invalid value 'clod': expected 'auto', 'cloud' or 'local' "
        "(did you mean 'cloud'?)",
        f"{bad2}:2:18: providers.A.id: provider id 'A' is not safe: use lower-case letters, "
        "digits, '-' and '_', starting with a letter or digit",
    ]


def test_validate_warnings_do_not_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("version: 1\nproviders: [{id: p, keys: [{value: sk-abc}]}]\n")
    assert main(["validate", "--quiet", str(path)]) == 0
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith(f"{path}:2:36: providers.p.keys[0].value: warning: plain-text secret")
    assert "sk-abc" not in out.err


def test_validate_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "none.yaml")]) == 1
    assert "cannot read the file" in capsys.readouterr().err


def test_schema_to_stdout_and_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = capsys.readouterr().out
    assert printed == pool_json_schema_text()
    assert json.loads(printed)["$schema"].endswith("2020-12/schema")
    target = tmp_path / "out" / "pool.schema.json"
    assert main(["schema", "--output", str(target)]) == 0
    assert target.read_text() == printed


def test_schema_refuses_to_run_without_docstrings(tmp_path: Path) -> None:
    """Under -OO (as the systemd unit runs the daemon) the descriptions would be missing."""
    env = {**os.environ, "PYTHONOPTIMIZE": "2"}
    target = tmp_path / "pool.schema.json"
    done = subprocess.run(
        [sys.executable, "-m", "pooldaemon", "schema", "--output", str(target)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert "PYTHONOPTIMIZE=2" in done.stderr and "docstrings" in done.stderr
    assert not target.exists()


def test_run_invalid_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pool.yaml"
    path.write_text("version: 1\nrouting: [x]\n")
    assert main(["run", "--config", str(path)]) == 1
    assert f"{path}:2:10: routing:" in capsys.readouterr().err


def test_run_bad_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POOLDAEMON_LISTEN", "nope")
    assert main(["run"]) == 2
    assert "POOLDAEMON_LISTEN" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["validate"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2


def test_installed_console_script() -> None:
    script = Path(sys.executable).parent / "pooldaemon"
    assert script.exists(), "the package's console script is not installed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POOLDAEMON_")}
    proc = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, env=env, check=False
    )
    assert (proc.returncode, proc.stdout.strip()) == (0, f"pooldaemon {__version__}")
    proc = subprocess.run(
        [str(script), "validate", str(ROOT / "config" / "pool.yaml")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
