"""carelog.web."""
