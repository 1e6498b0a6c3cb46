"""`Task[P, R]`: a function registered with `@app.task`, typed like the function.

`delay()` and `apply_async()` build a `Message`, encode it once and publish it in one
round trip; `map()` publishes many in one. A plain call runs the function inline.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any, Generic, ParamSpec, TypeVar, cast

import msgspec

from conveyor.canvas import Signature, error_handlers
from conveyor.context import TaskContext, current_task
from conveyor.errors import ConfigurationError
from conveyor.host import Host
from conveyor.message import Message, check_arguments, new_id, now
from conveyor.options import (
    TaskOptions,
    check_priority,
    check_queue,
    check_task_id,
    to_timestamp,
)
from conveyor.result import AsyncResult

P = ParamSpec("P")
R = TypeVar("R")
MESSAGE_OPTIONS = ("countdown", "eta", "expires", "priority", "queue", "retries", "time_limit",
                   "soft_time_limit", "headers")


class _Unset:
    def __repr__(self) -> str:
        return "<not given>"


UNSET: Any = _Unset()  # `retries=None` means "for ever": "not given" needs its own value


def unique_claim(key: str) -> str:
    """The coordination claim that holds a unique task's key while it is pending or running."""
    return f"unique:{key}"


class Task(Generic[P, R]):
    """A registered task. Call it to run inline; `delay()` to run it on a worker."""

    def __init__(self, app: Host, fn: Callable[..., Any], options: TaskOptions) -> None:
        self.app = app
        self.fn = fn
        self.options = options
        self.name = options.name
        self.is_async = inspect.iscoroutinefunction(fn)
        signature = inspect.signature(fn)
        params = list(signature.parameters.values())
        if options.bind:
            if not params:
                raise TypeError(f"task {self.name!r} has bind=True, so its first parameter "
                                "receives the task context: add one (e.g. `task`)")
            params = params[1:]
        self.signature = signature.replace(parameters=params)
        self.param_names = [p.name for p in params]
        # For the common call, positional arguments only to a function of plain
        # parameters: how many it takes, checked without Signature.bind (a tenth of a
        # delay() on Redis). None: the function has *args, **kwargs or keyword-only ones.
        self._arity: tuple[int, int] | None = None
        if all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params):
            self._arity = (sum(p.default is p.empty for p in params), len(params))
        self.__name__ = getattr(fn, "__name__", self.name)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<Task {self.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run inline in this process, like the function (a bound task gets a fresh context)."""
        if self.options.bind:
            context = current_task.get() or TaskContext(new_id(), self.name)
            return self.fn(context, *args, **kwargs)  # type: ignore[no-any-return]
        return self.fn(*args, **kwargs)  # type: ignore[no-any-return]

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise TypeError, naming the task, when the arguments don't fit its signature."""
        if not kwargs and self._arity is not None and (
                self._arity[0] <= len(args) <= self._arity[1]):
            return
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"task {self.name!r}: {exc} (signature: {self.signature})") from None

    def s(self, *args: Any, **kwargs: Any) -> Signature[R]:
        """A signature for workflows: the previous step's value is prepended to `args`."""
        return Signature(self.app, self.name, args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature[R]:
        """An immutable signature: called with exactly these arguments, whatever came before."""
        return Signature(self.app, self.name, args, kwargs, immutable=True)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Enqueue with default options. Durable once it returns."""
        return self.apply_async(args, kwargs)

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """`delay()` for async code: the publish runs off the event loop."""
        import asyncio  # here, not at the top: most programs never need it (it costs MBs)

        return await asyncio.to_thread(self.apply_async, args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: datetime | None = None,
        expires: float | datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        task_id: str | None = None,
        unique_key: str | None = None,
        link_error: Signature[Any] | Sequence[Signature[Any]] | None = None,
        retries: int | None = UNSET,
        time_limit: float | None = UNSET,
        soft_time_limit: float | None = UNSET,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncResult[R]:
        """Enqueue with per-call options: `countdown` seconds or an `eta` datetime to run
        later, `expires` (seconds or datetime) after which it is revoked unrun,
        `priority` 0..9, another `queue`, or your own `task_id`. With `unique_key`, while
        a task with that key is pending or running this returns that task's result
        instead of enqueuing another. `link_error=handler.s()` calls the handler with this
        task's id if it fails for good. `retries`, `time_limit` and `soft_time_limit`
        override the task's for this call; `headers` (str to str) reach the task as
        `task.headers`.

        Raises TypeError when the arguments don't fit the function, SerializationError
        when one can't be sent as JSON, MessageTooLarge, BrokerUnavailable.
        """
        message = self.message(args, kwargs, countdown=countdown, eta=eta, expires=expires,
                               priority=priority, queue=queue, task_id=task_id,
                               retries=retries, time_limit=time_limit,
                               soft_time_limit=soft_time_limit, headers=headers)
        if link_error is not None:
            message = msgspec.structs.replace(message, link_error=error_handlers(link_error))
        if unique_key is None and self.options.unique_for is not None:
            unique_key = self.unique_key(message)
        if unique_key is not None:
            return self._publish_unique(message, unique_key)
        self.app.publish([message], self.param_names)
        return self._result(message.id, message.queue)

    def _result(self, task_id: str, queue: str | None = None) -> AsyncResult[R]:
        result = cast("AsyncResult[R]", self.app.AsyncResult(task_id))  # str: no alias per call
        result.queue = queue  # for a TimeoutError that says where it went
        return result

    def delay_on_commit(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """`delay()` once the current database transaction commits, nothing if it rolls
        back (Django: a task that reads a row it was handed sees it committed)."""
        return self.apply_async_on_commit(args, kwargs)

    def apply_async_on_commit(self, args: Sequence[Any] = (),
                              kwargs: Mapping[str, Any] | None = None, *,
                              using: str | None = None, **options: Any) -> AsyncResult[R]:
        """`apply_async()` once the transaction on database `using` commits (at once
        outside a transaction, as Django's ``on_commit``). The arguments are checked and
        encoded now, so a bad one raises here, not after the commit. The result's id is
        known now; it stays PENDING for good if the transaction rolls back.

        Raises ConfigurationError on an App that knows no transactions (only a
        `DjangoApp` does), and what `apply_async` raises.
        """
        task_id = options.pop("task_id", None) or new_id()
        message = self.message(args, kwargs, task_id=task_id,
                               **{k: options[k] for k in MESSAGE_OPTIONS if k in options})
        self.app.seal([message], self.param_names)
        self.app.on_commit(partial(self.apply_async, args, kwargs, task_id=task_id, **options),
                           using)
        return self._result(task_id, message.queue)

    def unique_key(self, message: Message) -> str:
        """`unique_for` without a `unique_key`: the task's name and a digest of its
        arguments, so identical calls share a key."""
        check_arguments(message, self.param_names)  # raises, naming a bad argument
        encoded = msgspec.json.encode([message.args, message.kwargs], order="sorted")
        import hashlib  # here: OpenSSL costs a process MBs, and few tasks are unique

        return f"{self.name}:{hashlib.sha256(encoded).hexdigest()[:32]}"

    def _publish_unique(self, message: Message, key: str) -> AsyncResult[R]:
        """Claim the key for this message's id, then publish; a claim held by another id
        means that task is still pending or running: hand back its result."""
        if not isinstance(key, str) or not key:
            raise ValueError(f"unique_key must be a non-empty string, got {key!r}")
        waiting = max(0.0, message.eta - now()) if message.eta else 0.0
        ttl = (self.options.unique_for or self.app.settings.result_ttl) + waiting
        coordination = self.app.coordination
        holder = coordination.claim(unique_claim(key), message.id, ttl)
        if holder != message.id:
            return self._result(holder)
        try:
            self.app.publish([msgspec.structs.replace(message, unique=key)], self.param_names)
        except BaseException:
            coordination.release(unique_claim(key), message.id)
            raise
        return self._result(message.id, message.queue)

    def map(self, arguments: Iterable[Sequence[Any] | Mapping[str, Any]]) -> list[AsyncResult[R]]:
        """Enqueue one task per item (a tuple of args or a dict of kwargs), in one round trip."""
        messages = [
            self.message((), item) if isinstance(item, Mapping) else self.message(item, None)
            for item in arguments
        ]
        self.app.publish(messages, self.param_names)
        return [self._result(m.id, m.queue) for m in messages]

    def message(
        self,
        args: Sequence[Any],
        kwargs: Mapping[str, Any] | None,
        *,
        countdown: float | None = None,
        eta: datetime | None = None,
        expires: float | datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        task_id: str | None = None,
        retries: int | None = UNSET,
        time_limit: float | None = UNSET,
        soft_time_limit: float | None = UNSET,
        headers: Mapping[str, str] | None = None,
    ) -> Message:
        """Build (not send) the message for one call, validating everything first."""
        if not isinstance(args, list | tuple):
            raise TypeError(f"task {self.name!r}: args must be a tuple or list, got {args!r}")
        kwargs = dict(kwargs or {})
        self.check_arguments(args, kwargs)
        if countdown is not None and eta is not None:
            raise ValueError("give either countdown or eta, not both")
        created = now()
        run_at = to_timestamp(countdown, "countdown", relative=True) or to_timestamp(
            eta, "eta", relative=False)
        return Message(
            id=check_task_id(task_id) or new_id(),
            task=self.name,
            args=list(args),
            kwargs=kwargs,
            # the task's own queue and priority were checked when it was declared
            queue=self.options.queue if queue is None else check_queue(queue),
            priority=self.options.priority if priority is None else check_priority(priority),
            eta=run_at,
            expires=to_timestamp(expires, "expires", relative=True),
            created=created,
            headers=check_headers(headers) if headers else {},
            options=self._overrides({"retries": retries, "time_limit": time_limit,
                                     "soft_time_limit": soft_time_limit})
            if retries is not UNSET or time_limit is not UNSET or soft_time_limit is not UNSET
            else {},  # the common call overrides nothing: no dicts built, nothing checked
        )

    def _overrides(self, given: dict[str, Any]) -> dict[str, Any]:
        """The task options this call overrides, checked as a declaration would be (with
        the task's others: a soft limit must stay below the hard one)."""
        given = {k: v for k, v in given.items() if v is not UNSET}
        merged = {**self.options.middleware, **given}
        try:
            self.app.middleware.validate_options(self.name, merged)
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None
        return {k: merged[k] for k in given}


def check_headers(headers: object) -> dict[str, str]:
    if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise TypeError(f"headers must map str to str, got {headers!r}")
    return dict(headers)


class AsyncTask(Task[P, R]):
    """A registered `async def` task: a plain call returns the coroutine, like the function;
    `delay()` gives an AsyncResult of the awaited value."""

    def __call__(  # type: ignore[override]
        self, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]:
        return super().__call__(*args, **kwargs)  # type: ignore[return-value]
