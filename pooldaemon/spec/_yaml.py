"""YAML text -> plain data plus the position of every key and value.

ruamel.yaml's safe composer builds the node tree (no Python objects are ever
constructed from tags); this module walks it into dicts, lists and scalars and
records, for each path, where its key and its value start. Duplicate keys,
non-string keys, unknown tags, recursive aliases and alias bombs are reported
with their place instead of being silently accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pooldaemon.spec._base import Loc

__all__ = ["Located", "Mark", "Pos", "YamlProblem", "parse_yaml"]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null")
)
_COLLECTION_TAGS = frozenset(("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"))
MAX_NODES = 200_000
MAX_DEPTH = 64


@dataclass(frozen=True, slots=True)
class Mark:
    """A 1-based line and column."""

    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Pos:
    """Where a path's key (None for list items and the root) and value start."""

    key: Mark | None
    value: Mark


@dataclass(frozen=True, slots=True)
class YamlProblem:
    mark: Mark
    path: Loc
    message: str


@dataclass(slots=True)
class Located:
    """Parsed data with positions, and every problem the walk found."""

    data: Any
    positions: dict[Loc, Pos] = field(default_factory=dict)
    problems: list[YamlProblem] = field(default_factory=list)


def _mark(node: Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def parse_yaml(text: str) -> Located:
    """Parse one YAML document. Raises ``YamlSyntaxError`` for text that is not YAML."""
    yaml = YAML(typ="safe", pure=True)
    try:
        root = yaml.compose(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
        message = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise YamlSyntaxError(where, message or "invalid YAML") from exc
    except YAMLError as exc:
        # Reader errors (characters YAML does not allow) carry a character offset.
        where = _offset_mark(text, getattr(exc, "position", None))
        reason = getattr(exc, "reason", None)
        character = getattr(exc, "character", None)
        if isinstance(reason, str) and isinstance(character, int):
            message = f"character U+{character:04X} is not allowed: {reason}"
        else:
            message = str(exc).splitlines()[0]
        raise YamlSyntaxError(where, message) from exc
    if root is None:
        return Located(None, {(): Pos(None, Mark(1, 1))})
    walker = _Walker(yaml)
    data = walker.walk(root, (), 0)
    walker.located.data = data
    walker.located.positions.setdefault((), Pos(None, _mark(root)))
    return walker.located


def _offset_mark(text: str, offset: object) -> Mark:
    if not isinstance(offset, int) or not 0 <= offset <= len(text):
        return Mark(1, 1)
    return Mark(text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1)


class YamlSyntaxError(ValueError):
    def __init__(self, mark: Mark, message: str) -> None:
        self.mark = mark
        self.message = message
        super().__init__(message)


class _Walker:
    def __init__(self, yaml: YAML) -> None:
        self.constructor = yaml.constructor
        self.located = Located(None)
        self.count = 0
        self.stack: set[int] = set()

    def problem(self, node: Node, path: Loc, message: str) -> None:
        self.located.problems.append(YamlProblem(_mark(node), path, message))

    def walk(self, node: Node, path: Loc, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            if self.count == MAX_NODES + 1:
                self.problem(
                    node,
                    path,
                    f"document too large (over {MAX_NODES} nodes after expanding aliases)",
                )
            return None
        if depth > MAX_DEPTH:
            self.problem(node, path, f"nested deeper than {MAX_DEPTH} levels")
            return None
        if id(node) in self.stack:
            self.problem(node, path, "recursive alias: a node contains itself")
            return None
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if node.tag not in _COLLECTION_TAGS:
            self.problem(node, path, f"unsupported YAML tag {node.tag!r}")
            return None
        self.stack.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self.mapping(node, path, depth)
            if isinstance(node, SequenceNode):
                return [self.item(child, (*path, i), depth) for i, child in enumerate(node.value)]
        finally:
            self.stack.discard(id(node))
        self.problem(node, path, "unsupported YAML node")
        return None

    def item(self, node: Node, path: Loc, depth: int) -> Any:
        self.located.positions[path] = Pos(None, _mark(node))
        return self.walk(node, path, depth + 1)

    def scalar(self, node: ScalarNode, path: Loc) -> Any:
        if node.tag == _TIMESTAMP_TAG:
            # No field is a date; keep the text so `api_version: 2023-06-01` is a string.
            return node.value
        if node.tag not in _SCALAR_TAGS:
            self.problem(node, path, f"unsupported YAML tag {node.tag!r}")
            return None
        try:
            return self.constructor.construct_object(node, deep=True)
        except (YAMLError, ValueError, TypeError, OverflowError) as exc:
            self.problem(node, path, f"invalid {node.tag.rsplit(':', 1)[-1]} value: {exc}")
            return None

    def mapping(self, node: MappingNode, path: Loc, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag not in (
                _STR_TAG,
                _TIMESTAMP_TAG,
            ):
                shown = key_node.value if isinstance(key_node, ScalarNode) else "a collection"
                self.problem(
                    key_node, path, f"mapping keys must be strings, got {shown!r}; quote the key"
                )
                continue
            key = key_node.value
            child = (*path, key)
            if key in result:
                first = self.located.positions[child].key
                line = f" (first at line {first.line})" if first else ""
                self.problem(key_node, child, f"duplicate key {key!r}{line}")
                continue
            key_mark = _mark(key_node)
            empty = isinstance(value_node, ScalarNode) and value_node.value == ""
            # An empty value has no text of its own: its place is its key's line.
            self.located.positions[child] = Pos(key_mark, key_mark if empty else _mark(value_node))
            result[key] = self.walk(value_node, child, depth + 1)
        if merges:
            # Explicit keys win over merged ones, and so do their recorded places.
            n = len(path)
            positions = self.located.positions
            saved = {p: pos for p, pos in positions.items() if len(p) > n and p[:n] == path}
            for merge in merges:
                self.merge(merge, path, depth, result)
            positions.update(saved)
        return result

    def merge(self, node: Node, path: Loc, depth: int, result: dict[str, Any]) -> None:
        """`<<: *base` (or a list of them): keys of the mapping(s) not set explicitly."""
        sources = node.value if isinstance(node, SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, MappingNode):
                self.problem(source, path, "'<<' merges only mappings")
                continue
            merged = self.walk(source, path, depth)
            if isinstance(merged, dict):
                for key, value in merged.items():
                    result.setdefault(key, value)
