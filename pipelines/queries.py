"""Named SQL files: the only way Python code gets SQL text (all SQL lives in ``sql/``).

``sql/queries/<group>/<name>.sql`` holds one statement; values are always bound as parameters (``$1`` or
``?``). Where a statement must name a relation that varies (the refresh engine fills one table of many),
the file writes ``{{ name }}`` and :func:`render` fills it with a checked SQL identifier, never a value.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from pipelines.errors import SafeauditError

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
QUERIES_DIR = SQL_DIR / "queries"
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
SLOT = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class QueryError(SafeauditError):
    """A named query that does not exist, or a slot filled with something that is not an identifier."""


@cache
def query(name: str) -> str:
    """The text of ``sql/queries/<name>.sql`` (``name`` may hold a group: ``"dashboard/tradeoff"``)."""
    path = QUERIES_DIR / f"{name}.sql"
    if not path.is_file():
        raise QueryError(f"{path}: no such named query")
    return path.read_text()


def render(name: str, **identifiers: str) -> str:
    """``query(name)`` with each ``{{ slot }}`` replaced by a checked identifier (``table`` or ``schema.table``)."""
    text = query(name)
    for key, value in identifiers.items():
        if not IDENTIFIER.match(value):
            raise QueryError(f"{name}.sql: slot {key!r} takes an SQL identifier, got {value!r}")
    missing = sorted({m.group(1) for m in SLOT.finditer(text)} - identifiers.keys())
    if missing:
        raise QueryError(f"{name}.sql: slots not filled: {', '.join(missing)}")
    return SLOT.sub(lambda m: identifiers[m.group(1)], text)
