"""YAML loading that remembers the line of every key, so errors can point at the file and line."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from conformance.api.fields import KeyPath, format_path
from conformance.api.kinds import ADMIN_KINDS
from conformance.errors import Location, ScenarioError
from conformance.scenario.limits import MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES


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
        meta = self.obj.get("metadata")
        if not isinstance(meta, dict):
            meta = {}  # parsing the policy reports a metadata that is not a mapping
        namespace = "" if self.kind in ADMIN_KINDS else str(meta.get("namespace") or "")
        return (self.kind, namespace, str(meta.get("name") or ""))


_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser when PyYAML was built with it (about 50 times faster), else pure Python.

Only its events are used: composing nodes, resolving aliases and building values happen here,
with the limits of ``conformance.scenario.limits``."""

# Characters YAML does not allow in a stream (YAML 1.1 c-printable); checked before parsing so
# the error can name the line and column.
_NOT_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


def read_source(path: Path, file: str | None = None) -> str:
    """The text of a scenario or policy file: a regular file of at most ``MAX_FILE_BYTES``, UTF-8.

    The file is opened without blocking and checked with ``fstat`` before anything is read, so a
    FIFO or a device (``/dev/zero``) is refused instead of hanging the loader.
    """
    name = file if file is not None else str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ScenarioError("no such file", Location(name)) from None
    except OSError as exc:
        raise ScenarioError(f"cannot read file: {exc.strerror}", Location(name)) from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ScenarioError(
                "not a regular file: scenario and policy files must be regular files, not "
                "devices, FIFOs, sockets or folders",
                Location(name),
            )
        if st.st_size > MAX_FILE_BYTES:
            raise ScenarioError(_too_big(st.st_size), Location(name))
        try:
            data = fh.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise ScenarioError(f"cannot read file: {exc.strerror}", Location(name)) from None
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioError(_too_big(len(data)), Location(name))
    return decode_source(data, name)


def _too_big(size: int) -> str:
    return (
        f"file is {size} bytes; scenario and policy files may have at most {MAX_FILE_BYTES} "
        "bytes (limit MAX_FILE_BYTES)"
    )


def decode_source(data: bytes, file: str) -> str:
    """``data`` as UTF-8; an invalid byte is reported with its line and column."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ScenarioError(
            f"column {column}: byte 0x{data[exc.start]:02x} is not valid UTF-8 ({exc.reason}); "
            "scenario and policy files must be UTF-8 text",
            Location(file, line),
        ) from None


def _check_printable(text: str, file: str) -> None:
    bad = _NOT_PRINTABLE.search(text)
    if bad is None:
        return
    line = text.count("\n", 0, bad.start()) + 1
    column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
    raise ScenarioError(
        f"column {column}: character U+{ord(bad.group()):04X} is not allowed in YAML "
        "(control characters other than tab and newline, and surrogates, are not)",
        Location(file, line),
    )


class _Composer:
    """YAML events to node graphs, one per document, with the depth limit and no alias cycles.

    PyYAML's own composer recurses once per nesting level and lets an alias point into the node
    that defines its anchor (``&a [*a]``), which makes every later walk recurse forever.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.resolver: Any = yaml.SafeLoader("")  # its resolve() is untyped in the stubs

    def compose(self, text: str) -> list[yaml.Node]:
        loader = _LOADER(text)
        docs: list[yaml.Node] = []
        stack: list[list[Any]] = []  # [node, pending mapping key or None, anchor or None]
        anchors: dict[str, yaml.Node] = {}
        open_anchors: set[str] = set()
        root: yaml.Node | None = None

        def add(node: yaml.Node) -> None:
            nonlocal root
            if not stack:
                root = node
                return
            top = stack[-1]
            if isinstance(top[0], yaml.SequenceNode):
                top[0].value.append(node)
            elif top[1] is None:
                top[1] = node
            else:
                top[0].value.append((top[1], node))
                top[1] = None

        try:
            while loader.check_event():
                ev: Any = loader.get_event()
                start: Any = ev.start_mark  # libyaml's marks are a type of their own in the stubs
                end: Any = ev.end_mark
                if isinstance(ev, yaml.DocumentStartEvent):
                    anchors, root = {}, None
                elif isinstance(ev, yaml.DocumentEndEvent):
                    if root is not None:
                        docs.append(root)
                elif isinstance(ev, yaml.AliasEvent):
                    if ev.anchor in open_anchors:
                        raise ScenarioError(
                            f"alias *{ev.anchor} is inside the node its anchor &{ev.anchor} "
                            "defines (a recursive alias); aliases may only repeat finished nodes",
                            self._at(ev.start_mark),
                        )
                    if ev.anchor not in anchors:
                        raise ScenarioError(
                            f"alias *{ev.anchor} has no anchor &{ev.anchor} before it",
                            self._at(ev.start_mark),
                        )
                    add(anchors[ev.anchor])
                elif isinstance(ev, yaml.ScalarEvent):
                    tag = ev.tag
                    if tag is None or tag == "!":
                        tag = self.resolver.resolve(yaml.ScalarNode, ev.value, ev.implicit)
                    scalar = yaml.ScalarNode(tag, ev.value, start, end, ev.style)
                    if ev.anchor is not None:
                        anchors[ev.anchor] = scalar
                        open_anchors.discard(ev.anchor)  # the latest definition is finished
                    add(scalar)
                elif isinstance(ev, yaml.SequenceStartEvent | yaml.MappingStartEvent):
                    if len(stack) >= MAX_DEPTH:
                        raise ScenarioError(
                            f"nested more than {MAX_DEPTH} levels deep (limit MAX_DEPTH)",
                            self._at(ev.start_mark),
                        )
                    kind = (
                        yaml.SequenceNode
                        if isinstance(ev, yaml.SequenceStartEvent)
                        else yaml.MappingNode
                    )
                    tag = ev.tag
                    if tag is None or tag == "!":
                        tag = self.resolver.resolve(kind, None, ev.implicit)
                    node = kind(tag, [], start, None, ev.flow_style)
                    if ev.anchor is not None:
                        anchors[ev.anchor] = node
                        open_anchors.add(ev.anchor)
                    add(node)
                    stack.append([node, None, ev.anchor])
                elif isinstance(ev, yaml.SequenceEndEvent | yaml.MappingEndEvent):
                    node, _, anchor = stack.pop()
                    node.end_mark = end
                    open_anchors.discard(anchor)
        except yaml.YAMLError as exc:
            raise _syntax_error(self.file, exc) from None
        finally:
            loader.dispose()
        return docs

    def _at(self, mark: Any) -> Location:
        return Location(self.file, mark.line + 1 if mark is not None else 0)


class _Builder:
    """Node graph to plain values, counting every value built (aliases expand each time used)."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[KeyPath, int] = {}
        self.constructor = yaml.SafeLoader("")
        self.values = 0

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            raise ScenarioError(
                f"the document has more than {MAX_VALUES} values once its aliases are expanded "
                "(limit MAX_VALUES); an alias repeats its anchor's whole value each time it is used",
                self._at(node, path),
            )
        if len(path) > MAX_DEPTH:
            raise ScenarioError(
                f"nested more than {MAX_DEPTH} levels deep once aliases are expanded (limit MAX_DEPTH)",
                self._at(node, path),
            )
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                # '<<' merge keys (YAML 1.1): keys written in the mapping win, then earlier sources.
                for source in self._merge_sources(value_node, path):
                    for k, v in source.items():
                        merged.setdefault(k, v)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise ScenarioError("mapping keys must be plain scalars", self._at(key_node, path))
            key = self._scalar(key_node, path)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise ScenarioError("mapping keys must be plain scalars", self._at(key_node, path))
            child = (*path, key if isinstance(key, str) else str(key))
            if key in out:
                raise ScenarioError(
                    f"duplicate key {key!r}",
                    Location(self.file, key_node.start_mark.line + 1, format_path(child)),
                )
            self.lines[child] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, child)
        for k, v in merged.items():
            out.setdefault(k, v)
        return out

    def _merge_sources(self, node: yaml.Node, path: KeyPath) -> list[dict[Any, Any]]:
        nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
        sources = []
        for item in nodes:
            if not isinstance(item, yaml.MappingNode):
                raise ScenarioError(
                    "a merge key '<<' takes a mapping or a list of mappings",
                    self._at(item, path),
                )
            sources.append(self._mapping(item, path))
        return sources

    def _scalar(self, node: yaml.Node, path: KeyPath) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise _syntax_error(self.file, exc) from None
        except Exception as exc:  # PyYAML's constructors fail in many ways on odd tagged values
            # (`!!timestamp x` is an AttributeError inside PyYAML, 5000 digits a ValueError).
            raise ScenarioError(
                f"invalid {node.tag.rsplit(':', 1)[-1]} value {str(node.value)[:40]!r}: "
                + str(exc).split(";")[0],
                self._at(node, path),
            ) from None

    def _at(self, node: yaml.Node, path: KeyPath) -> Location:
        return Location(self.file, node.start_mark.line + 1, format_path(path))


def _syntax_error(file: str, exc: yaml.YAMLError) -> ScenarioError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return ScenarioError(f"invalid YAML: {problem}", Location(file, mark.line + 1 if mark else 0))


def load_documents(text: str, file: str) -> list[Document]:
    """Every document of a (multi-document) YAML text, empty documents skipped.

    Limits (``conformance.scenario.limits``): ``MAX_DEPTH`` levels of nesting, ``MAX_VALUES``
    values per document once aliases are expanded; an alias inside its own anchor is an error.
    """
    _check_printable(text, file)
    docs = []
    for node in _Composer(file).compose(text):
        builder = _Builder(file)
        data = builder.build(node, ())
        docs.append(Document(file, data, builder.lines))
    return docs


def load_document(text: str, file: str) -> Document:
    docs = load_documents(text, file)
    if len(docs) != 1:
        raise ScenarioError(
            f"expected exactly one YAML document, found {len(docs)}", Location(file)
        )
    return docs[0]
