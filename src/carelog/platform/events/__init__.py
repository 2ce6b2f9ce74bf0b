"""Event types: the bookable services an expert offers (owner-only writes)."""
