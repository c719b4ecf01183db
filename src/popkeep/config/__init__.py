"""popkeep.config."""
