"""popkeep.planner."""
