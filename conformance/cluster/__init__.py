"""Embedded cluster: a loopback Kubernetes API over a real network-namespace dataplane.

Start one with ``netpol-conformance cluster up`` or, from Python, ``EmbeddedCluster`` (see
``conformance.cluster.embedded``). Details and knobs: docs/cluster.md.
"""

from __future__ import annotations
