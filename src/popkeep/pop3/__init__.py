"""popkeep.pop3."""
