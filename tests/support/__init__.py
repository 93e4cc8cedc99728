"""Helpers for tests that run a real center."""
