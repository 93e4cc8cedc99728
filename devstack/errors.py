"""The one error devstack raises: a throwaway server could not be started or driven."""

from __future__ import annotations


class StackError(RuntimeError):
    """A server could not be started, reached or stopped; the message quotes its log's tail."""
