"""Find the App named by ``-A`` / ``$CONVEYOR_APP``, the way Flask finds its app.

``pkg.module:name`` takes that attribute (an App, or a factory returning one);
``pkg.module`` takes its ``app`` attribute, else the only App in the module, else the
result of its ``create_app()``.

A mistake in ``-A`` is the first thing a newcomer meets, so every failure here is one
line that says what to do (with a did-you-mean for a misspelt module or attribute), and
a module that raises while it is imported shows its own traceback, not ours or click's.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import click

from conveyor.app import App
from conveyor.errors import ConveyorError, did_you_mean

# Frames of these files are the machinery between the command line and the user's module.
_MACHINERY = tuple(str(Path(m.__file__ or "").parent) for m in (click, importlib)) + (
    str(Path(__file__).parent), "<frozen ")


def load_app(spec: str | None) -> App:
    if not spec:
        raise click.UsageError(
            "which app? pass -A pkg.module[:app] or set $CONVEYOR_APP"
        )
    module_name, _, attr = spec.partition(":")
    if module_name.endswith(".py"):
        dotted = module_name.removesuffix(".py").strip("./").replace("/", ".")
        raise click.UsageError(f"-A takes a module name, not a file: drop .py "
                               f"(-A {dotted}{':' + attr if attr else ''})")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = _import(module_name, spec)
    try:
        found = _find(module, attr, spec)
    except ConveyorError as exc:  # the App's own configuration: one line says what to do
        raise click.ClickException(f"the app in {spec!r} can't be used: {exc}") from exc
    if not isinstance(found, App):
        raise click.UsageError(f"-A {spec} names {found!r}, which is not a conveyor App")
    return found


def _import(module_name: str, spec: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise click.UsageError(
                f"can't import {module_name!r} (from -A {spec}): {exc}: "
                f"{_close_module(module_name) or 'run from the directory that contains it'}"
            ) from exc
        failure: BaseException = exc
    except ConveyorError as exc:  # an App made at import time with a wrong setting
        raise click.ClickException(f"the app in {spec!r} can't be used: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - the user's module raised: show where
        failure = exc
    click.echo("".join(traceback.format_exception(type(failure), failure,
                                                  _user_frames(failure.__traceback__))),
               err=True, nl=False)
    raise click.ClickException(
        f"importing {module_name!r} (from -A {spec}) failed: {type(failure).__name__}: "
        f"{failure} (its traceback is above)")


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    """The traceback from the first frame that isn't importlib's, click's or ours: where
    the user's code starts."""
    first = tb
    while first is not None and first.tb_frame.f_code.co_filename.startswith(_MACHINERY):
        first = first.tb_next
    return first or tb


def _close_module(module_name: str) -> str:
    """"did you mean -A x?" naming the closest module beside the one that isn't found (in
    the working directory for a top-level name, in its package for a dotted one), or ""."""
    parent, _, leaf = module_name.rpartition(".")
    try:
        where = importlib.import_module(parent).__path__ if parent else [os.getcwd()]
    except Exception:  # noqa: BLE001 - only a hint: the parent is what's missing then
        return ""
    import pkgutil  # here: a MB a process, for `-A` discovery only

    names = [m.name for m in pkgutil.iter_modules(list(where))]
    hint = did_you_mean(leaf, names)
    if not hint:
        return ""
    close = hint.split("'")[1]
    return f"did you mean -A {parent + '.' if parent else ''}{close}?"


def _find(module: Any, attr: str, spec: str) -> Any:
    if attr:
        if not hasattr(module, attr):
            names = [n for n in vars(module) if not n.startswith("_")]
            hint = did_you_mean(attr, names)
            close = f"; did you mean -A {module.__name__}:{hint.split(chr(39))[1]}?" \
                if hint else ""
            raise click.UsageError(f"module {module.__name__!r} has no attribute "
                                   f"{attr!r}{close}")
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
