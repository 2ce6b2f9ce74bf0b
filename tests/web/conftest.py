"""The viewer's ``env`` fixture (defined with its page tests) for every module here."""

from test_viewer_http import env  # noqa: F401
