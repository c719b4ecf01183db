"""popkeep.retention (to be written)."""
