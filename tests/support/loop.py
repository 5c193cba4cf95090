"""The lab's asyncio loop in a background thread, with the test as a blocking client from its own.

The lab is one asyncio loop (as in the lab process); tests drive it from the test's thread through
`run` (a coroutine) and `call` (a plain function), both bounded by a deadline, and a test's lab
objects are touched only from the loop's thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
DEADLINE_S = 10.0
"""How long one call into the loop may take, and how long stopping the loop may take, in seconds."""


class LoopThread:
    """An asyncio event loop running forever in a daemon thread until `close`."""

    def __init__(self, *, name: str = "lab-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], *, timeout_s: float = DEADLINE_S) -> T:
        """Run `coroutine` in the loop and return its result (TimeoutError after `timeout_s`)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def call(self, function: Callable[[], T], *, timeout_s: float = DEADLINE_S) -> T:
        """Call `function()` in the loop's thread and return its result."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def invoke() -> None:
            try:
                future.set_result(function())
            except BaseException as error:
                future.set_exception(error)

        self.loop.call_soon_threadsafe(invoke)
        return future.result(timeout_s)

    def close(self) -> None:
        """Cancel the tasks still running, stop the loop, join its thread and close the loop."""
        if self.loop.is_closed():
            return
        try:
            self.run(_wind_down())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(DEADLINE_S)
            if self._thread.is_alive():
                raise TimeoutError(f"the {self._thread.name} thread did not stop within {DEADLINE_S}s")
            self.loop.close()


@contextmanager
def running_loop(*, name: str = "lab-loop") -> Iterator[LoopThread]:
    """A `LoopThread` for the `with` block; closed (leftover tasks cancelled) when it ends."""
    thread = LoopThread(name=name)
    try:
        yield thread
    finally:
        thread.close()


async def _wind_down() -> None:
    # A test that failed half-way leaves server tasks behind; closing the loop under them would
    # drop them without their cleanup (sockets left open, "Task was destroyed but it is pending").
    leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in leftovers:
        task.cancel()
    await asyncio.gather(*leftovers, return_exceptions=True)
    loop = asyncio.get_running_loop()
    await loop.shutdown_asyncgens()
    # asyncio.to_thread (the EC2 endpoint) starts executor threads that loop.close() would not join.
    await loop.shutdown_default_executor()
