"""The expert's public profile, its publication and the practitioner agreement."""
