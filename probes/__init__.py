"""What runs inside probe pods: ``batch.sh`` (shipped as package data, read by conformance.probing)."""
