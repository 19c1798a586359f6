"""A link to no host at all: reports are decoded and printed, for PCs without a Pi.

It runs the real encoder and decoder, so what appears in the terminal is what a
host with the same layout would type, backspaces included.
"""

from __future__ import annotations

import sys
from typing import TextIO

from voxkey.hid import RELEASE_ALL
from voxkey.keymap import KeyStroke, Layout, decode_strokes, newly_pressed


class TerminalLink:
    """Prints what a host would type; always connected."""

    name = "terminal"

    def __init__(self, layout: Layout, stream: TextIO | None = None) -> None:
        self.layout = layout
        self.stream = stream if stream is not None else sys.stdout
        self._previous = RELEASE_ALL
        self._pending: list[KeyStroke] = []

    def wait_for_host(self, deadline: float | None) -> None:
        return None

    def send(self, report: bytes, deadline: float | None) -> None:
        self._pending.extend(newly_pressed(self._previous, report))
        self._previous = report
        if report == RELEASE_ALL and self._pending:
            try:
                text = decode_strokes(self._pending, self.layout)
            except ValueError:
                return  # a dead key waiting for its second stroke
            self._pending.clear()
            self.stream.write(text.replace("\b", "\b \b"))
            self.stream.flush()

    def led_state(self) -> int:
        return 0

    def release_all(self) -> None:
        self._previous = RELEASE_ALL

    def close(self) -> None:
        return None
