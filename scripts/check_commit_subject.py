"""commit-msg hook: the subject line (first line) of a commit message stays under 72 characters.

Measurements and reasons go in the body. Merge commits and fixup!/squash! subjects are checked the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path

LIMIT = 72


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: check_commit_subject.py COMMIT_MSG_FILE", file=sys.stderr)
        return 2
    lines = [ln for ln in Path(argv[1]).read_text().splitlines() if not ln.startswith("#")]
    subject = lines[0].rstrip() if lines else ""
    if not subject:
        print(f"{argv[1]}: empty commit subject", file=sys.stderr)
        return 1
    if len(subject) >= LIMIT:
        print(
            f"{argv[1]}: subject is {len(subject)} characters (keep it under {LIMIT}): {subject}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
