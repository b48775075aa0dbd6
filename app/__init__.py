"""CACT server: computer-assisted competency tests for civil servants."""

__version__ = "0.1.0"
