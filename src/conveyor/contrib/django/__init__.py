"""Conveyor for Django: an installed app configured from ``settings.CONVEYOR``, the
project's App in ``proj/conveyor.py``, ``manage.py conveyor ...``, enqueue on commit,
results in the Django database and a ``django.tasks`` backend. See docs/django.md.

    # proj/conveyor.py
    from conveyor.contrib.django import DjangoApp
    app = DjangoApp("proj")

Importing this package reads no settings, so ``proj/conveyor.py`` may be imported
while Django is still loading them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.contrib.django.app import DjangoApp, project_app

__all__ = ["DjangoApp", "project_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from conveyor.contrib.django import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
