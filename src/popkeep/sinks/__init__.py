"""Destinations: where collected messages are stored durably."""
