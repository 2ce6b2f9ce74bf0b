"""carelog.core."""
