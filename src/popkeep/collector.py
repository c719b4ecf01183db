"""popkeep.collector (to be written)."""
