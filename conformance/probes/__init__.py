"""What runs inside probe pods: ``batch.sh`` (package data, read by ``conformance.live.probing``)."""
