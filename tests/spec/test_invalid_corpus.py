"""Every file in ``invalid/`` is one class of mistake, with its expected report.

A file states what ``pooldaemon validate`` must say in header comments::

    # expect: LINE PATH: MESSAGE-FRAGMENT

(``-`` as PATH for problems that belong to no field). The test requires exit
code 1 and exactly the expected problems: each at that line, with that dotted
path, containing that fragment, and no other problem.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pooldaemon.cli import main

CORPUS = Path(__file__).parent / "invalid"
FILES = sorted(CORPUS.glob("*.yaml"))
_EXPECT = re.compile(r"^# expect: (\d+) (\S.*?): (.+)$")


def _expectations(path: Path) -> list[tuple[int, str, str]]:
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _EXPECT.match(line)
        if match:
            found.append((int(match.group(1)), match.group(2), match.group(3)))
    assert found, f"{path.name} states no expectation"
    return found


def test_corpus_is_large_enough() -> None:
    assert len(FILES) >= 40


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_invalid_file_reports_exact_place(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    lines = [line for line in out.err.splitlines() if ": warning: " not in line]
    expected = _expectations(path)
    assert len(lines) == len(expected), out.err
    for line_no, dotted, fragment in expected:
        prefix = f"{path}:{line_no}:"
        field = "" if dotted == "-" else f" {dotted}: "
        matching = [
            line
            for line in lines
            if line.startswith(prefix) and field in line and fragment in line.split(": ", 1)[1]
        ]
        assert matching, f"expected {prefix}..{field}..{fragment!r} in:\n{out.err}"
        if dotted == "-":
            # A problem with no field has nothing between the column and the message.
            assert re.match(rf"{re.escape(prefix)}\d+: [^.:]+", matching[0]), matching[0]


def test_console_script_reports_every_file() -> None:
    """The real command, as a user runs it: all files checked, exit 1."""
    proc = subprocess.run(
        [sys.executable, "-m", "pooldaemon", "validate", *map(str, FILES)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 1
    reported = {line.split(":", 1)[0] for line in proc.stderr.splitlines()}
    assert reported == {str(p) for p in FILES}
