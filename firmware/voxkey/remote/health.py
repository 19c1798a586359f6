"""Whether the speech server is worth asking, and getting it back after it failed.

A dead server is found out once: the phrase that meets the failure falls back
to the on-device model and logs one line; every later phrase goes straight to
the device (no connection attempt, no deadline to wait out) until a probe in
the background gets an answer again. Probes back off (``retry_min_s``
doubling to ``retry_max_s``) so a server that is off for the night costs a
connection attempt every few minutes, not one per dictation.

A probe asks the server to speak its protocol without transcribing anything
(Wyoming ``Describe``; an HTTP request with the token over the same TLS
checks), so it is cheap for a busy server: a 1 s silence took 3-5 s on a
loaded CPU-only faster-whisper. So it checks address, TLS, token and
protocol, not the transcription itself: a server that answers the probe and
then fails phrases is found down again by the next phrase (one log line).

Time comes from an injectable clock and :meth:`ServerHealth.poll` runs one
probe step, so tests drive the schedule without sleeping.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from voxkey.errors import RemoteAsrError

log = logging.getLogger(__name__)


class Backoff:
    """Delays between probes: ``min_s``, twice that, ... up to ``max_s``; ``reset`` after a success."""

    def __init__(self, min_s: float, max_s: float) -> None:
        self.min_s = min_s
        self.max_s = max_s
        self._next = min_s

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.max_s)
        return delay

    def reset(self) -> None:
        self._next = self.min_s


class ServerHealth:
    """Up until a failure; then down until a background probe succeeds."""

    def __init__(
        self,
        probe: Callable[[], None],
        where: str,
        backoff: Backoff,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
    ) -> None:
        self._probe = probe
        self.where = where
        self._backoff = backoff
        self._clock = clock
        self._lock = threading.Lock()
        self._up = True
        self._due = 0.0
        self.last_error = ""
        self.failures = 0  # times the server was found down (each logged once)
        self.probes = 0
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name="voxkey-remote-probe", daemon=True)
            self._thread.start()

    @property
    def up(self) -> bool:
        return self._up

    def failed(self, error: RemoteAsrError) -> None:
        """A phrase met ``error``: stop asking the server until a probe succeeds (logs once per outage)."""
        with self._lock:
            self.last_error = str(error)
            if not self._up:
                return
            self._up = False
            self.failures += 1
            delay = self._backoff.next_delay()
            self._due = self._clock() + delay
        log.warning("%s; using the on-device model, retrying the server every %.0f s or more", error, delay)
        self._wake.set()

    def seconds_to_probe(self) -> float | None:
        """How long until the next probe is due; None while the server is up."""
        with self._lock:
            return None if self._up else max(0.0, self._due - self._clock())

    def poll(self) -> bool:
        """Probe the server if it is down and a probe is due; whether it is up now."""
        with self._lock:
            if self._up or self._clock() < self._due:
                return self._up
        self.probes += 1
        try:
            self._probe()
        except RemoteAsrError as exc:
            with self._lock:
                self.last_error = str(exc)
                self._due = self._clock() + self._backoff.next_delay()
            log.debug("probe: %s", exc)
            return False
        with self._lock:
            self._up = True
            self._backoff.reset()
            self.last_error = ""
        log.info("%s answers again: dictation goes to it", self.where)
        return True

    def _run(self) -> None:
        while not self._closed:
            wait = self.seconds_to_probe()
            self._wake.wait(wait)
            self._wake.clear()
            if not self._closed:
                self.poll()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
