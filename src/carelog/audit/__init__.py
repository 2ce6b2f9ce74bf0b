"""carelog.audit."""
