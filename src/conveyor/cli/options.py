"""Options shared by every command: how the App is found, and how errors are shown."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from conveyor.app import App
from conveyor.discovery import load_app
from conveyor.errors import ConveyorError

F = TypeVar("F", bound=Callable[..., Any])


def group_app_option(fn: F) -> F:
    """``-A`` on a command group (``conveyor -A shop status``, ``conveyor dead -A shop
    list``): the App is loaded once and handed to the subcommands through ``ctx.obj``."""

    def remember(ctx: click.Context, _: click.Parameter, spec: str | None) -> None:
        if spec and not isinstance(ctx.obj, App):
            ctx.obj = load_app(spec)
            ctx.meta["conveyor.app_spec"] = spec

    return click.option("-A", "--app", "app_spec", metavar="MODULE[:APP]", expose_value=False,
                        callback=remember, is_eager=True,
                        help="The module holding your App (also $CONVEYOR_APP).")(fn)


def with_app(fn: F) -> F:
    """Add ``-A/--app`` and pass the resolved App as the command's first argument. An App
    already in ``ctx.obj`` (Flask, Django) wins; ConveyorErrors become clean CLI errors."""

    @click.option("-A", "--app", "app_spec", envvar="CONVEYOR_APP", metavar="MODULE[:APP]",
                  help="The module holding your App (also $CONVEYOR_APP).")
    @click.pass_context
    @functools.wraps(fn)
    def wrapper(ctx: click.Context, app_spec: str | None, *args: Any, **kwargs: Any) -> Any:
        if isinstance(ctx.obj, App):
            if ctx.get_parameter_source("app_spec") is ParameterSource.COMMANDLINE:
                raise click.UsageError("-A is not used here: the app comes from the framework "
                                       "(flask --app ..., or Django's settings)")
            app = ctx.obj
        else:
            app = load_app(app_spec)
            ctx.meta["conveyor.app_spec"] = app_spec  # so `worker` can re-load it elsewhere
        try:
            return fn(app, *args, **kwargs)
        except ConveyorError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]
