"""The reference: verdicts the policy APIs define (``evaluator``), the bitset fast path (``matrix``),
truth tables, declared expectations and the inventory of a cluster's policies (``analyze``). Pure."""
