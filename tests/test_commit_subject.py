"""The commit-msg hook refuses a subject of 72 characters or more and passes a short one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HOOK = Path(__file__).resolve().parent.parent / "scripts" / "check_commit_subject.py"


def _run(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    msg = tmp_path / "COMMIT_EDITMSG"
    msg.write_text(text)
    return subprocess.run([sys.executable, str(HOOK), str(msg)], capture_output=True, text=True)


def test_short_subject_passes(tmp_path):
    assert _run(tmp_path, "sld: one line\n\nbody with 1.23 s measured\n").returncode == 0


def test_long_subject_fails_with_its_length(tmp_path):
    out = _run(tmp_path, "x" * 72 + "\n")
    assert out.returncode == 1
    assert "72 characters" in out.stderr


def test_comment_lines_are_not_the_subject(tmp_path):
    assert _run(tmp_path, "# Please enter the commit message\nfix: short\n").returncode == 0
