"""Planner model (to be written): pure discrete-event simulation."""
