"""YAML/JSON reading that keeps line numbers (for error messages) and refuses the YAML 1.1
surprises that would corrupt item text ("No" and "Ya" stay strings; duplicate keys are errors).

Aliases (``*name``, and so ``<<: *name`` merges) are refused: a few hundred bytes of nested
aliases name hundreds of millions of values ("billion laughs"), which every later walk over
the document (checks, checksum, storage) would expand. A bank or blueprint never needs them."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import yaml

BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class LineDict(dict):
    """A mapping that remembers the line it started on."""

    line: int = 0
    duplicates: list[tuple[str, int]]


class LineList(list):
    line: int = 0


if TYPE_CHECKING:
    _SafeLoader = yaml.SafeLoader
else:  # libyaml's loader when PyYAML was built with it: ~10x faster
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeLoader):
    pass


# Only true/false are booleans: "yes", "no", "on", "off" stay text (option texts are often "Ya").
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", BOOL_RE, list("tTfF"))


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.duplicates = []
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            result.duplicates.append((str(key), key_node.start_mark.line + 1))
        result[key] = loader.construct_object(value_node, deep=True)
    return result


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


class YamlError(ValueError):
    """Why a text is not a usable YAML document. ``key`` (with ``params``) names a translatable
    problem message when there is one (``problem.<key>`` in the locale files)."""

    def __init__(self, line: int, message: str, *, key: str = "",
                 params: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.key = key
        self.params = params or {}


def _has_alias(root: yaml.Node) -> bool:
    """Whether any node is reached twice: the composer gives an alias the very node its anchor
    named. Each node is visited once, so this is linear in the text, even for a bomb."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            return True
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return False


def _first_alias(text: str) -> tuple[int, str]:
    """Line and anchor name of the first alias (only on the error path: the event stream does
    not expand aliases, so a bomb is as short here as in the file)."""
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            mark = event.start_mark
            return (mark.line + 1 if mark else 0), str(event.anchor)
    return 0, ""


def load(text: str) -> Any:
    """Parse YAML (or JSON, which YAML reads too) keeping line numbers. Raises YamlError, also
    for aliases and for nesting too deep to read."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _has_alias(node):
            line, name = _first_alias(text)
            raise YamlError(line, f"YAML aliases (*{name}) are not allowed; write the value "
                                  "out in full", key="yaml_alias", params={"name": name})
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise YamlError(line, f"{exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise YamlError(0, str(exc)) from None
    except RecursionError:  # libyaml stops at 1000 levels, building the values sooner
        raise YamlError(0, "nested too deeply", key="yaml_too_deep") from None
    finally:
        loader.dispose()


def line_of(value: Any, default: int = 0) -> int:
    return getattr(value, "line", default) or default
