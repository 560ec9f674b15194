"""Reading a run spec's YAML with bounds: what a small file may expand into is small.

A 760-byte spec of nested aliases ("billion laughs") used 3.4 GB before ``MemoryError`` under
``yaml.safe_load``. This loader is ``SafeLoader`` with four refusals, each one line naming the file and line:

* aliases (``*name``): a run spec never needs them, and refusing them bounds the expansion by the file;
* duplicate keys in one mapping (``safe_load`` silently keeps the last one);
* nesting deeper than :data:`MAX_DEPTH`;
* more than :data:`MAX_NODES` nodes.

The file itself is capped at :data:`MAX_SPEC_BYTES` before it is parsed.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_SPEC_BYTES = 1 << 20  # 1 MiB: the largest spec we ship is ~3 KB
MAX_DEPTH = 16
MAX_NODES = 100_000


class SpecYAMLError(ValueError):
    """A refused YAML construct; ``line`` is 1-based (or None)."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


def _line(node_or_event: yaml.Node | yaml.Event) -> int | None:
    mark = getattr(node_or_event, "start_mark", None)
    return mark.line + 1 if mark is not None else None


class BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses aliases and duplicate keys, and caps nesting depth and node count."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise SpecYAMLError(f"YAML alias *{event.anchor} refused (write the value out)", _line(event))
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise SpecYAMLError(f"more than {MAX_NODES} YAML nodes", _line(self.peek_event()))
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise SpecYAMLError(f"nested deeper than {MAX_DEPTH} levels", _line(self.peek_event()))
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: SafeLoader reports it below
                continue
            if duplicate:
                raise SpecYAMLError(f"duplicate key {key!r}", _line(key_node))
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_bounded(text: str) -> Any:
    """Parse one YAML document with :class:`BoundedLoader`."""
    loader = BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
