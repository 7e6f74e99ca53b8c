"""YAML loading that remembers the line of every key, so errors can point at the file and line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from conformance.api.fields import KeyPath, format_path
from conformance.api.kinds import ADMIN_KINDS
from conformance.errors import Location, ScenarioError


@dataclass(frozen=True)
class Document:
    """A parsed YAML document plus the 1-based line of each key path in it."""

    file: str
    data: Any
    lines: Mapping[KeyPath, int]
    base: KeyPath = ()

    def locate(self, path: KeyPath) -> Location:
        """Location of ``path`` (relative to ``base``; reported in full); else the nearest parent's."""
        full = (*self.base, *path)
        probe = full
        while probe and probe not in self.lines:
            probe = probe[:-1]
        return Location(self.file, self.lines.get(probe, 1), format_path(full))

    def sub(self, path: KeyPath, data: Any) -> Document:
        """A view of a nested object: callers give paths relative to it."""
        return Document(self.file, data, self.lines, (*self.base, *path))


@dataclass(frozen=True)
class PolicySource:
    """A verbatim policy object and where it was written (for error locations)."""

    obj: dict[str, Any]
    doc: Document

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def ident(self) -> tuple[str, str, str]:
        """(kind, namespace, name); the namespace is "" for cluster-scoped admin policy kinds."""
        meta = self.obj.get("metadata") or {}
        namespace = "" if self.kind in ADMIN_KINDS else str(meta.get("namespace") or "")
        return (self.kind, namespace, str(meta.get("name") or ""))


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[KeyPath, int] = {}
        self.constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            self.constructor.flatten_mapping(node)  # resolves '<<' merge keys
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.constructor.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | float | bool) and key is not None:
                    raise ScenarioError(
                        "mapping keys must be plain scalars",
                        Location(self.file, key_node.start_mark.line + 1, format_path(path)),
                    )
                child = (*path, key if isinstance(key, str) else str(key))
                if key in out:
                    raise ScenarioError(
                        f"duplicate key {key!r}",
                        Location(self.file, key_node.start_mark.line + 1, format_path(child)),
                    )
                self.lines[child] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.constructor.construct_object(node, deep=True)


def _syntax_error(file: str, exc: yaml.YAMLError) -> ScenarioError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return ScenarioError(f"invalid YAML: {problem}", Location(file, mark.line + 1 if mark else 0))


def load_documents(text: str, file: str) -> list[Document]:
    """Every document of a (multi-document) YAML text, empty documents skipped."""
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise _syntax_error(file, exc) from None
    docs = []
    for node in nodes:
        if node is None:
            continue
        builder = _Builder(file)
        try:
            data = builder.build(node, ())
        except yaml.YAMLError as exc:
            raise _syntax_error(file, exc) from None
        docs.append(Document(file, data, builder.lines))
    return docs


def load_document(text: str, file: str) -> Document:
    docs = load_documents(text, file)
    if len(docs) != 1:
        raise ScenarioError(
            f"expected exactly one YAML document, found {len(docs)}", Location(file)
        )
    return docs[0]
