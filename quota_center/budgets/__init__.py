"""Budgets: administration, the cache of their definitions, and the conservation audit."""
