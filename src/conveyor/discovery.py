"""Find the App named by ``-A`` / ``$CONVEYOR_APP``, the way Flask finds its app.

``pkg.module:name`` takes that attribute (an App, or a factory returning one);
``pkg.module`` takes its ``app`` attribute, else the only App in the module, else the
result of its ``create_app()``.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from conveyor.app import App
from conveyor.errors import ConveyorError


def load_app(spec: str | None) -> App:
    if not spec:
        raise click.UsageError(
            "which app? pass -A pkg.module[:app] or set $CONVEYOR_APP"
        )
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
        found = _find(module, attr, spec)
    except ImportError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise click.UsageError(f"can't import {module_name!r} (from -A {spec}): {exc}; "
                                   "run from the directory that contains it") from exc
        raise
    except ConveyorError as exc:  # the App's own configuration: one line says what to do
        raise click.ClickException(f"the app in {spec!r} can't be used: {exc}") from exc
    if not isinstance(found, App):
        raise click.UsageError(f"-A {spec} names {found!r}, which is not a conveyor App")
    return found


def _find(module: Any, attr: str, spec: str) -> Any:
    if attr:
        if not hasattr(module, attr):
            raise click.UsageError(f"module {module.__name__!r} has no attribute {attr!r}")
        found = getattr(module, attr)
        return found() if callable(found) and not isinstance(found, App) else found
    if isinstance(getattr(module, "app", None), App):
        return module.app
    apps = [value for value in vars(module).values() if isinstance(value, App)]
    if len(apps) == 1:
        return apps[0]
    if len(apps) > 1:
        raise click.UsageError(f"{module.__name__!r} has several Apps: name one, "
                               f"e.g. -A {spec}:app")
    factory = getattr(module, "create_app", None)
    if callable(factory):
        return factory()
    raise click.UsageError(f"no conveyor App found in {module.__name__!r}: define "
                           "app = App(...) there, or pass -A module:name")
