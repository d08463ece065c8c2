"""A small Django project for the server-span tests (settings are configured by the tests)."""
