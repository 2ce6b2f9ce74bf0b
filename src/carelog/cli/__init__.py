"""carelog.cli."""
