"""popkeep.rules."""
