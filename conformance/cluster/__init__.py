"""Embedded cluster: a loopback Kubernetes API over a real network-namespace dataplane.

Start one with ``netpol-conformance cluster up`` or, from Python, ``EmbeddedCluster`` (see
``conformance.cluster.embedded``). Details and knobs: docs/cluster.md.
"""

from __future__ import annotations

EMBEDDED_MARK = "netpol-embedded"
"""In the embedded cluster's server version and kubeconfig context names: how clients tell it."""


def is_embedded_version(server_version: str) -> bool:
    """Whether a ``/version`` gitVersion is the embedded cluster's."""
    return EMBEDDED_MARK in server_version
