"""Strict loading of YAML and JSON documents written by people (job files).

YAML is read with a YAML 1.2-like core schema instead of PyYAML's YAML 1.1 defaults, which
surprise users of a scheduler: `22:00` would be the integer 1320 (sexagesimal), `no` and `off`
would be false, `2026-01-01` a date and `010` an octal 8. Here only `true`/`false` are booleans,
only plain decimal numbers are numbers, and everything else stays text. Duplicate keys are
refused in both formats rather than silently keeping the last one.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from core.errors import JobFileError

_DROPPED_TAGS = {
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
}


class _StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # an unhashable key: SafeLoader reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789"),
)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice")
        out[key] = value
    return out


def load_document(text: str, fmt: str, source: str) -> object:
    """Parse `text` as `fmt` ("yaml" or "json"); `source` names it in errors."""
    if fmt == "json":
        try:
            return json.loads(text, object_pairs_hook=_no_duplicates)
        except json.JSONDecodeError as e:
            raise JobFileError(
                source, f"not valid JSON: line {e.lineno} column {e.colno}: {e.msg}"
            ) from None
        except ValueError as e:
            raise JobFileError(source, f"not valid JSON: {e}") from None
    if fmt == "yaml":
        try:
            return yaml.load(
                text, Loader=_StrictLoader
            )  # a SafeLoader subclass: no arbitrary objects
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
            raise JobFileError(source, f"not valid YAML: {where}{e.problem or e.context}") from None
        except yaml.YAMLError as e:
            raise JobFileError(source, f"not valid YAML: {e}") from None
    raise JobFileError(source, f"unknown format {fmt!r}: use yaml or json")


def dump_document(data: object, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    raise JobFileError("<output>", f"unknown format {fmt!r}: use yaml or json")
