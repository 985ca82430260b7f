"""Enrichment: pure lookups used by the agents (metric dictionary, ...)."""
