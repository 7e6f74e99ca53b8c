"""The policy APIs as plain data: kinds, cluster model, selectors, field validation, NetworkPolicy
and the admin tiers. Pure: no YAML files, no client, no I/O; every other layer builds on this one."""
