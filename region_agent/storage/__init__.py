"""Where the agent's counters (``journal``) and request records (``record_log``) outlive the process:
memory-mapped files, written by stores to memory, read back at start."""
