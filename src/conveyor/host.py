"""What tasks, workflows and the task life cycle need of their App, as protocols.

Tasks, signatures and the beat's entries are handed their App, but they type against
`Host`, the small part of it they use, so nothing below `App` names it. `App` is a Host;
so is the Flask extension, which forwards each call to the App of the current Flask app.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from conveyor.broker import Broker
from conveyor.config import Settings
from conveyor.message import Envelope, Message
from conveyor.options import TaskOptions
from conveyor.store import Coordination, ResultStore

if TYPE_CHECKING:
    from conveyor.result import AsyncResult


class Registered(Protocol):
    """What workflows and the beat need of a registered task."""

    name: str
    options: TaskOptions

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise TypeError, naming the task, when the arguments don't fit its signature."""


class OptionChecks(Protocol):
    """The App's middleware, as a task sees it: what checks options a call overrides."""

    def validate_options(self, task_name: str, options: dict[str, Any]) -> None: ...


class Hooks(OptionChecks, Protocol):
    """The App's middleware, as what runs and ends tasks sees it."""

    def notify(self, hook: str, *args: Any) -> None: ...


class Host(Protocol):
    """An App, as its tasks and workflows see it."""

    @property
    def middleware(self) -> OptionChecks: ...

    @property
    def tasks(self) -> Mapping[str, Registered]: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def results(self) -> ResultStore: ...

    @property
    def coordination(self) -> Coordination: ...

    def seal(self, messages: Sequence[Message], param_names: Sequence[str] = ()
             ) -> tuple[Sequence[Message], list[Envelope]]:
        """Encode and sign, raising every error a publish could raise about the messages."""

    def publish(self, messages: Sequence[Message], param_names: Sequence[str] = ()) -> None:
        """Seal and send, in one round trip."""

    def on_commit(self, publish: Callable[[], object], using: str | None = None) -> None:
        """Call `publish` once the current database transaction commits."""

    def revoke(self, task_ids: str | Sequence[str], terminate: bool = False) -> list[str]: ...

    def AsyncResult(self, task_id: str) -> AsyncResult[Any]: ...  # noqa: N802 - Celery's name


class Runtime(Host, Protocol):
    """An App as what happens around running tasks sees it (the worker, the follow-ups
    of finished tasks, revoking, re-running dead letters): a Host with its broker."""

    @property
    def broker(self) -> Broker: ...

    @property
    def middleware(self) -> Hooks: ...

    def send(self, messages: Sequence[Message], envelopes: list[Envelope]) -> None:
        """Publish envelopes `seal` made, in one round trip."""
