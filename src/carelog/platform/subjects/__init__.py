"""Patients as data subjects: identity per organization, erasure, accounting, export."""
