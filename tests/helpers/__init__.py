"""Helpers shared by the unit and end-to-end tests (import as ``helpers.common``)."""
