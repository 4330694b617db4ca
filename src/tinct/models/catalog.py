"""Imports every model module in this package so that each registers itself (see base.register).

A new model is one new file here with a ``@register("name")`` class: nothing else to edit.
"""

import importlib
import pkgutil

_PACKAGE = importlib.import_module(__package__)
for _info in pkgutil.iter_modules(_PACKAGE.__path__):
    if not _info.name.startswith("_") and _info.name not in ("base", "catalog"):
        importlib.import_module(f"{__package__}.{_info.name}")
