"""Hosts for tests: links that record every report the keyboard sends, as a computer would receive them."""

from __future__ import annotations

import threading
import time

from voxkey.errors import HostUnavailableError
from voxkey.hid import RELEASE_ALL, USAGES
from voxkey.keymap import Layout, decode

US = Layout.load("us")


def screen(text: str) -> str:
    """What a text field shows after ``text`` as a host types it (Backspace erases)."""
    shown: list[str] = []
    for char in text:
        if char == "\b":
            if shown:
                shown.pop()
        else:
            shown.append(char)
    return "".join(shown)


class CaptureLink:
    """A host that records every report; it can be absent (unplugged) and slow."""

    name = "capture"

    def __init__(self, delay_s: float = 0.0, present: bool = True) -> None:
        self.reports: list[bytes] = []
        self.delay_s = delay_s
        self.present = threading.Event()
        if present:
            self.present.set()
        self.first_report = threading.Event()
        self.lock = threading.Lock()

    def wait_for_host(self, deadline: float | None) -> None:
        while not self.present.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                raise HostUnavailableError("capture host absent")
            self.present.wait(0.02)

    def send(self, report: bytes, deadline: float | None) -> None:
        with self.lock:
            self.reports.append(report)
        self.first_report.set()
        if self.delay_s:
            time.sleep(self.delay_s)

    def led_state(self) -> int:
        return 0

    def release_all(self) -> None:
        """Recorded like any report (a test can see every key let go, not just trust a call); lost if absent."""
        if not self.present.is_set():
            return
        with self.lock:
            self.reports.append(RELEASE_ALL)

    def close(self) -> None:
        return None

    def typed(self) -> str:
        """Characters as the host received them, backspaces included."""
        with self.lock:
            return decode(list(self.reports), US)

    def screen(self) -> str:
        """What a text field shows after those characters (Backspace erases)."""
        return screen(self.typed())

    def backspaces(self) -> int:
        with self.lock:
            return sum(1 for r in self.reports if r[2] == USAGES["backspace"])


class MediaKeyHost(CaptureLink):
    """A host that also takes media keys, as a Bluetooth iPad does."""

    def __init__(self) -> None:
        super().__init__()
        self.media_keys: list[int] = []

    def send_consumer(self, usage: int, deadline: float | None) -> None:
        with self.lock:
            self.media_keys.append(usage)
