"""popkeep.scheduler (to be written)."""
