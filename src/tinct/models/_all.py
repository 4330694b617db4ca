"""Imports every model module so that each registers itself (see base.register)."""

from . import hypercolumns  # noqa: F401
