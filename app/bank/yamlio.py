"""YAML/JSON reading that keeps line numbers (for error messages) and refuses the YAML 1.1
surprises that would corrupt item text ("No" and "Ya" stay strings; duplicate keys are errors)."""

from __future__ import annotations

import re
from typing import Any

import yaml

BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class LineDict(dict):
    """A mapping that remembers the line it started on."""

    line: int = 0
    duplicates: list[tuple[str, int]]


class LineList(list):
    line: int = 0


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml: ~10x faster
    pass


# Only true/false are booleans: "yes", "no", "on", "off" stay text (option texts are often "Ya").
_Loader.yaml_implicit_resolvers = {  # noqa: E501
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
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def load(text: str) -> Any:
    """Parse YAML (or JSON, which YAML reads too) keeping line numbers."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise YamlError(line, f"{exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise YamlError(0, str(exc)) from None


def line_of(value: Any, default: int = 0) -> int:
    return getattr(value, "line", default) or default
