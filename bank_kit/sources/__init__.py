"""The data sources the kit knows: every class with a `name` and a `find`
method in a module of this folder. Add yours as a module here; the server
opens it with `--source NAME:LOCATION` and the kit's tests run against it
too (bank_kit/tests/ are parametrised over every source found here)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import cast

from bank_kit.records import DataSource


def discover() -> dict[str, type[DataSource]]:
    """{name: class} of every data source in bank_kit/sources/."""
    found: dict[str, type[DataSource]] = {}
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            name = getattr(cls, "name", None)
            if cls.__module__ != module.__name__ or not isinstance(name, str) or not hasattr(cls, "find"):
                continue
            if name in found:
                raise RuntimeError(f"two data sources are named {name!r}")
            found[name] = cast(type[DataSource], cls)  # has `name` and `find`: taken for a DataSource
    return found
