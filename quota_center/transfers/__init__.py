"""Moving budget between buckets: the ledger-first protocol and its sweeper."""
