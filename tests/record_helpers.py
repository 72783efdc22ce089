"""Comparing evaluation records: the fields that differ between two runs of one evaluation."""

VOLATILE = frozenset({"wall_time_s", "created", "command", "resumed", "environment",
                      "distributed"})
"""Keys that name when, how long and how a record was produced, not what it measured."""


def strip_volatile(rec):
    """``rec`` without the :data:`VOLATILE` keys, at every depth."""
    if isinstance(rec, dict):
        return {k: strip_volatile(v) for k, v in rec.items() if k not in VOLATILE}
    if isinstance(rec, list):
        return [strip_volatile(v) for v in rec]
    return rec
