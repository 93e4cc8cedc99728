"""The region agent: serves Deduct/Return in a caller's region from slices held in memory."""
