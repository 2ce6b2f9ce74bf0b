"""carelog.legacy."""
