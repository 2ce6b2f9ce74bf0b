"""carelog.platform."""
