"""The rules the center and the agents both obey: pure functions and values, no I/O."""
