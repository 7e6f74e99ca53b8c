"""Just enough Kubernetes protobuf decoding for the bodies ``kubectl create`` generators send.

Why: ``kubectl create namespace`` posts ``application/vnd.kubernetes.protobuf`` and does not retry
with JSON; the server decodes the envelope (``k8s\\0`` + runtime.Unknown) and the ObjectMeta of
a Namespace. Other protobuf kinds are answered 415 as by a server that lacks the codec.
"""

from __future__ import annotations

from typing import Any

MAGIC = b"k8s\x00"
PROTOBUF = "application/vnd.kubernetes.protobuf"


class ProtobufError(Exception):
    """The body is not a protobuf message this server can decode."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """Decode one message into (field number, varint or length-delimited bytes) pairs."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            size, pos = _varint(data, pos)
            out.append((number, data[pos : pos + size]))
            pos += size
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a string field")
    return value.decode()


def _object_meta(data: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    names = {1: "name", 2: "generateName", 3: "namespace"}
    for number, value in fields(data):
        if number in names and _text(value):
            meta[names[number]] = _text(value)
        elif number in (11, 12) and isinstance(value, bytes):
            entry = dict(fields(value))
            target = meta.setdefault("labels" if number == 11 else "annotations", {})
            target[_text(entry.get(1, b""))] = _text(entry.get(2, b""))
    return meta


def decode(body: bytes) -> dict[str, Any]:
    """Decode an enveloped object into its JSON form (Namespace only)."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf envelope")
    unknown = dict(fields(body[len(MAGIC) :]))
    head = unknown.get(1, b"")
    type_meta = dict(fields(head)) if isinstance(head, bytes) else {}
    api_version = _text(type_meta.get(1, b""))
    kind = _text(type_meta.get(2, b""))
    raw = unknown.get(2, b"")
    if kind != "Namespace" or not isinstance(raw, bytes):
        raise ProtobufError(f"protobuf bodies of kind {kind or '?'} are not supported; send JSON")
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": {}}
    for number, value in fields(raw):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _object_meta(value)
    return obj
