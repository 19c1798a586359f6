"""An asyncio event loop on its own thread, driven from blocking code: the bridge between BlueZ and ``Keyboard``.

BlueZ's API is asynchronous D-Bus (dbus-fast); voxkey's ``Keyboard`` and the
daemon are plain blocking code. The Bluetooth keyboard therefore runs one
event loop in a daemon thread, and every call from outside goes through here:
``submit`` for a coroutine whose result the caller waits for, ``call_soon``
for fire-and-forget work, ``spawn`` from code already on the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from voxkey.errors import BluetoothError

log = logging.getLogger(__name__)

T = TypeVar("T")


class LoopThread:
    """One event loop in one daemon thread; ``loop`` is None while it is not running."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        """Tasks started with ``spawn``: the loop keeps only weak references, so a task nobody holds can vanish."""

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self, boot: Callable[[], Coroutine[Any, Any, None]], timeout_s: float) -> None:
        """Start the thread, run ``boot()`` on its loop and wait for it; its exception is raised here.

        ``concurrent.futures.TimeoutError`` if it takes longer than ``timeout_s``
        (the loop keeps running: call ``stop``).
        """
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            asyncio.set_event_loop(loop)

            async def booting() -> None:
                try:
                    await boot()
                except BaseException as exc:
                    ready.set_exception(exc)
                    return
                ready.set_result(None)

            self.spawn(booting())
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        ready.result(timeout=timeout_s)

    def stop(self, shutdown: Callable[[], Coroutine[Any, Any, None]], timeout_s: float) -> None:
        """Run ``shutdown()`` on the loop (errors logged, never raised), then end the loop and the thread."""
        loop, thread = self.loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            future = asyncio.run_coroutine_threadsafe(shutdown(), loop)
            try:
                future.result(timeout=timeout_s)
            except Exception as exc:  # stopping must not raise: whatever it served is going away anyway
                log.debug("%s: shutdown: %s", self.name, exc)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        self._thread = None
        self.loop = None

    def require(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            raise BluetoothError("the Bluetooth keyboard is not running")
        return self.loop

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """On the loop's own thread: run ``coroutine`` as a task, keeping a reference until it is done."""
        task = self.require().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """From any thread: run ``coroutine`` on the loop; the caller may wait on the returned future."""
        if self.loop is None:
            coroutine.close()  # never to run: say so now, not as a "never awaited" warning at exit
        return asyncio.run_coroutine_threadsafe(coroutine, self.require())

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """From any thread: call ``callback(*args)`` on the loop's thread, in order with other calls."""
        self.require().call_soon_threadsafe(callback, *args)
