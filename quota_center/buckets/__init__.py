"""Redis side of the center: bucket state changed only through the Lua scripts in ``quota_center/lua``."""
