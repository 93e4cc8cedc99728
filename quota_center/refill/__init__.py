"""Keeping sub-buckets supplied: on-demand cover and merge, background fill and release."""
