"""Booked appointments: public booking of free events, paid ones from the checkout webhook."""
