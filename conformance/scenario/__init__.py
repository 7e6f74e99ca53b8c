"""Scenario files: the pydantic schema at the YAML boundary, located YAML documents, loading, binding
each step to a cluster state, and seeded random scenarios (``generate``). Pure: no cluster I/O."""
