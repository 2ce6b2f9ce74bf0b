"""carelog.db."""
