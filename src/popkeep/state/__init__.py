"""The state store: what popkeep knows about every server message and every run."""
