"""popkeep.sources."""
