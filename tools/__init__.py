"""Maintenance scripts of the kit (not installed with it): run the course, store notebooks, publish a fork."""
