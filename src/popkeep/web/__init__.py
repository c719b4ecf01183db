"""popkeep.web."""
