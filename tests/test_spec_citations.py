"""Every ``methods.md §X`` / ``evaluation.md X`` citation in the repository names a section that exists in
the copies under ``docs/specs/`` (the code cites them; a renumbered spec must not leave dangling references).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "docs" / "specs"
SCANNED = (
    "models",
    "pipelines",
    "dashboards",
    "dags",
    "sql",
    "runspecs",
    "bench",
    "scripts",
    "tests",
    "docs",
)
SUFFIXES = {".py", ".sql", ".yaml", ".yml", ".md"}

# "methods.md §4.6, §4.7", "methods.md §1.4 option (c)", "evaluation.md 2.5", "evaluation.md section 6"
CITATION = re.compile(r"\b(methods|evaluation)\.md\b")
FIRST = re.compile(r"\)?\s*(?:§\s*|section\s+)?(\d+(?:\.\d+)*)\b")
MORE = re.compile(r"§\s*(\d+(?:\.\d+)*)")
HEADING = re.compile(r"^#{2,4}\s+(\d+(?:\.\d+)*)\.?\s", re.M)


def sections(name: str) -> set[str]:
    return set(HEADING.findall((SPECS / f"{name}.md").read_text(encoding="utf-8")))


def citations(text: str) -> list[tuple[int, str, str]]:
    """(line number, spec name, section) of every numbered citation in ``text``."""
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        hits = list(CITATION.finditer(line))
        for i, hit in enumerate(hits):
            end = hits[i + 1].start() if i + 1 < len(hits) else len(line)
            tail = line[hit.end() : end]
            first = FIRST.match(tail)
            numbers = [first.group(1)] if first else []
            numbers += [n for n in MORE.findall(tail[first.end() if first else 0 :])]
            out += [(lineno, hit.group(1), n) for n in numbers]
    return out


def cited_files() -> list[Path]:
    files = []
    for top in SCANNED:
        for path in sorted((REPO / top).rglob("*")):
            if path.suffix in SUFFIXES and path.is_file() and SPECS not in path.parents:
                files.append(path)
    return files


def test_citation_parser_reads_every_form():
    text = (
        "x (docs/specs/methods.md §4.6, §4.7) and methods.md §1.4 option (c)\n"
        "y evaluation.md 2.5 core-6; z evaluation.md section 6; w docs/specs/evaluation.md §5.5\n"
        "methods.md (the spec) cites nothing\n"
    )
    assert citations(text) == [
        (1, "methods", "4.6"),
        (1, "methods", "4.7"),
        (1, "methods", "1.4"),
        (2, "evaluation", "2.5"),
        (2, "evaluation", "6"),
        (2, "evaluation", "5.5"),
    ]


def test_spec_copies_have_numbered_sections():
    assert {"0", "1", "1.4", "2.3", "3.2", "4.7", "5"} <= sections("methods")
    assert {"1.5", "2.5", "4.1", "4.3", "6"} <= sections("evaluation")


def test_every_cited_section_exists():
    known = {name: sections(name) for name in ("methods", "evaluation")}
    found, missing = 0, []
    for path in cited_files():
        if path == Path(__file__).resolve():
            continue  # the parser's own examples above
        for lineno, name, number in citations(path.read_text(encoding="utf-8", errors="replace")):
            found += 1
            if number not in known[name]:
                missing.append(f"{path.relative_to(REPO)}:{lineno}: {name}.md §{number}")
    assert found > 20, f"only {found} citations found: the scan or the parser is broken"
    assert not missing, "citations of sections docs/specs does not have:\n" + "\n".join(missing)


@pytest.mark.parametrize("top", ["models", "pipelines"])
def test_code_cites_the_repository_copy(top):
    """Code points readers at docs/specs/, which a clone has, not at a folder beside the checkout."""
    stale = [
        f"{path.relative_to(REPO)}:{lineno}"
        for path in sorted((REPO / top).rglob("*.py"))
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"(?<![\w/])(methods|evaluation)\.md", line) or "shared/specs" in line
    ]
    assert not stale, "cite docs/specs/<spec>.md: " + ", ".join(stale)
