"""The ``django://`` backend of `conveyor.backends`: results and coordination in the
Django database (no broker: Django's database is not a queue)."""

from __future__ import annotations

from conveyor.contrib.django.coordination import DjangoCoordination
from conveyor.contrib.django.results import DjangoResultStore

__all__ = ["DjangoCoordination", "DjangoResultStore", "open_coordination", "open_results"]


def open_results(url: str) -> DjangoResultStore:
    return DjangoResultStore(url)


def open_coordination(url: str) -> DjangoCoordination:
    return DjangoCoordination(url)
