"""Stage 2, dedup: events are recorded, planned (stale / duplicate / candidate) and claimed, once per order and milestone."""
