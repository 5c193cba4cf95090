"""Helpers shared by the test topics: import them relatively (`from ..support import loop`)."""
