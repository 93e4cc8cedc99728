"""Locust load scenarios against the quota service, and the checks run after them (see README.md)."""
