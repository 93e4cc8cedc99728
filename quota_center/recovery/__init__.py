"""Losing Redis: rebuild from the ledger, the spend log, settlement, answering retries."""
