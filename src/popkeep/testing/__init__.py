"""popkeep.testing."""
