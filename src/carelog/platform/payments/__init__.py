"""Stripe payments: the signed webhook that turns Stripe's events into meetings and payouts."""
