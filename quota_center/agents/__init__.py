"""Region agents as holders of budget at the center: their holdings, leases and sessions."""
