"""Merged acks on RabbitMQ: an ack with `multiple` set settles every unacked delivery of
the channel up to its tag, so a wrong plan acks a task that is still running (lost if
the worker then dies) or names a tag already settled (RabbitMQ closes the channel).
This plays random deliveries and finishing orders against a model of the server."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.backends.amqp.acks import Tags


class Server:
    """What RabbitMQ keeps for one channel: the delivered tags not yet settled."""

    def __init__(self) -> None:
        self.outstanding: set[int] = set()

    def ack(self, top: int | None, singles: list[int]) -> set[int]:
        settled = set()
        if top is not None:
            assert top in self.outstanding, f"multiple ack of unknown tag {top}"
            settled = {tag for tag in self.outstanding if tag <= top}
        self.outstanding -= settled
        for tag in singles:
            assert tag in self.outstanding, f"ack of unknown tag {tag}"
            self.outstanding.discard(tag)
            settled.add(tag)
        return settled


# A script: how many deliveries arrive, then which of the waiting ones finish together.
steps = st.lists(st.tuples(st.integers(0, 6), st.lists(st.integers(0, 50), max_size=6)),
                 min_size=1, max_size=40)


@given(steps)
@settings(max_examples=300, deadline=None)
def test_a_plan_settles_exactly_the_finished_tasks(script: list[tuple[int, list[int]]]) -> None:
    tags, server = Tags(), Server()
    next_tag, running = 1, []
    for arrivals, picks in script:
        for _ in range(arrivals):
            tags.delivered(next_tag)
            server.outstanding.add(next_tag)
            running.append(next_tag)
            next_tag += 1
        batch = sorted({running[i % len(running)] for i in picks} if running else set())
        for tag in batch:
            running.remove(tag)

        top, singles = tags.plan(batch)

        assert server.ack(top, singles) == set(batch)
    assert server.outstanding == set(running)


def test_the_oldest_finished_run_goes_as_one_frame() -> None:
    tags = Tags()
    for tag in range(1, 7):
        tags.delivered(tag)

    # 1, 2 and 3 finished with 5; 4 is still running
    assert tags.plan([3, 1, 5, 2]) == (3, [5])
    # 4 finishing releases 5's place too: the next merged ack may cover 6
    assert tags.plan([4]) == (4, [])
    assert tags.plan([6]) == (6, [])
