"""How many tasks a worker process holds: sized by its throughput unless fixed
(worker/window.py)."""

from __future__ import annotations

from conveyor.worker.window import CAP, SHRINK_AFTER, Window


def run(window: Window, rate: float, seconds: float, start: float = 0.0,
        done: int = 0) -> tuple[float, int]:
    """Feed the window `seconds` of finishing `rate` tasks a second, sampled often."""
    now = start
    while now < start + seconds:
        window.observe(done, now)
        now += 0.05
        done += int(rate * 0.05)
    return now, done


def test_short_tasks_get_a_window_of_about_20_ms_of_work() -> None:
    window = Window(16)
    run(window, 5000, 2.0)
    assert window.size == 128  # 5,000/s x 20 ms = 100, in a power of two


def test_slow_tasks_keep_the_floor_of_twice_the_threads() -> None:
    window = Window(16)
    run(window, 8, 5.0)  # 1-second tasks on 8 threads
    assert window.size == 16


def test_the_window_never_passes_its_cap() -> None:
    window = Window(16)
    run(window, 10**6, 1.0)
    assert window.size == CAP


def test_it_shrinks_only_after_the_throughput_stayed_lower_a_while() -> None:
    window = Window(16)
    now, done = run(window, 5000, 2.0)
    now, done = run(window, 8, SHRINK_AFTER / 2, now, done)
    assert window.size == 128  # a lull is not a new workload
    run(window, 8, SHRINK_AFTER * 2, now, done)
    assert window.size == 16


def test_a_fixed_prefetch_never_moves() -> None:
    window = Window(1, fixed=True)
    run(window, 5000, 2.0)
    assert window.size == 1
