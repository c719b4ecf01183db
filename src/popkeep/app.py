"""popkeep.app (to be written)."""
