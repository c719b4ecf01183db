"""Byte streams: the narrow seam between protocol code and the network."""
