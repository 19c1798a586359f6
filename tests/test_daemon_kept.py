"""Kept text through the whole daemon (#18 hole 2): typed exactly once, held for a tap, or dropped.

A real dictation (whisper on a speech recording, button on MockFactory pins)
goes to ``MovableHost``, which walks away after the 11th character's press,
as a computer does when its cable is pulled mid-text, and comes back as the
test says: the same host soon (a wiggle), the same host late (a laptop that
slept), a re-enumerated USB host or another Bluetooth host (another
computer). What the host received is decoded from its reports; its screen
applies the backspaces.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from tests.daemon_harness import (
    Harness,
    harnesses_fixture,
    make_config,
    room_fixture,
    transcribed_fixture,
    whisper_fixture,
)
from tests.hosts import CaptureLink
from voxkey.asr import WhisperEngine
from voxkey.config import Config, OutputSettings
from voxkey.hid import RELEASE_ALL
from voxkey.transports.base import LinkDown
from voxkey.ui import ButtonEdge, LightState

LEAVE_AFTER = 21
"""Reports before the host leaves: ten characters (press, release) and the press of the 11th."""
FIRST_PART = 11


engine = whisper_fixture()
room = room_fixture()
transcribed = transcribed_fixture()
harnesses = harnesses_fixture()


class MovableHost(CaptureLink):
    """A host that leaves after ``leave_after`` reports and comes back as ``identity`` when told."""

    def __init__(self, name: str = "usb", identity: str = "0", leave_after: int | None = LEAVE_AFTER) -> None:
        super().__init__()
        self.name = name
        self.identity = identity
        self.leave_after = leave_after
        self.left = False

    def host_id(self) -> str | None:
        return self.identity if self.present.is_set() else None

    def send(self, report: bytes, deadline: float | None) -> None:
        with self.lock:
            if not self.present.is_set():
                raise LinkDown(f"{self.name} host gone", previous_delivered=True)  # it got the report before
            self.reports.append(report)
            if self.leave_after is not None and len(self.reports) >= self.leave_after:
                self.leave_after = None
                self.left = True
                self.present.clear()
                self.reports.append(RELEASE_ALL)  # a host lets go of the keys of a keyboard that vanished
        self.first_report.set()

    def come_back(self, identity: str | None = None) -> None:
        if identity is not None:
            self.identity = identity
        self.present.set()


def config(resume_within_s: float, cancel_pin: int | None = None) -> Config:
    base = make_config("hold")
    output = OutputSettings(transport="usb", resume_within_s=resume_within_s)
    return dataclasses.replace(base, output=output, button=dataclasses.replace(base.button, cancel_pin=cancel_pin))


def dictate_until_the_host_left(
    engine: WhisperEngine,
    pins: MockFactory,
    room: Path,
    host: MovableHost,
    resume_within_s: float,
    cancel_pin: int | None = None,
) -> Harness:
    h = Harness(config(resume_within_s, cancel_pin), engine, pins, room, link=host)
    h.speak(3.4)
    h.wait_for(lambda: host.left, 120)
    h.wait_for(lambda: h.light_state() is LightState.WAITING_FOR_HOST, 10)
    return h


def tap(h: Harness) -> None:
    h.edges((0.0, "press"), (0.05, "release"))


def assert_held(h: Harness, host: MovableHost) -> None:
    h.wait_for(lambda: h.light_state() is LightState.TEXT_WAITING, 10)
    time.sleep(0.5)  # held means held: nothing more arrives while the light asks for a tap
    assert len(host.typed()) == FIRST_PART
    assert h.light_state() is LightState.TEXT_WAITING


def test_after_a_short_absence_kept_text_is_typed_by_itself_exactly_once(
    engine: WhisperEngine, pins: MockFactory, room: Path, transcribed: Callable[[Path], str], harnesses: list[Harness]
) -> None:
    host = MovableHost()
    h = dictate_until_the_host_left(engine, pins, room, host, resume_within_s=60)
    harnesses.append(h)
    assert len(host.typed()) == FIRST_PART
    host.come_back()  # a cable wiggle: the same enumeration, well within resume_within_s
    h.wait_for(lambda: h.daemon.counters.typed == 1, 60)
    assert host.typed() == transcribed(room)  # the rest once: nothing lost, nothing doubled, no backspace
    assert LightState.TEXT_WAITING not in h.history()
    h.wait_idle()


@pytest.mark.parametrize(
    ("name", "identity", "resume_within_s", "why"),
    [
        ("usb", "0", 0.3, "the same host, back after longer than resume_within_s"),
        ("usb", "1", 60, "USB re-enumerated: another computer, or the host reset the gadget"),
        ("bluetooth", "BB:BB:BB:BB:BB:BB", 60, "another Bluetooth host"),
    ],
)
def test_kept_text_is_held_for_a_tap_and_then_typed_once(
    engine: WhisperEngine,
    pins: MockFactory,
    room: Path,
    transcribed: Callable[[Path], str],
    harnesses: list[Harness],
    name: str,
    identity: str,
    resume_within_s: float,
    why: str,
) -> None:
    host = MovableHost(name, identity="AA:AA:AA:AA:AA:AA" if name == "bluetooth" else "0")
    h = dictate_until_the_host_left(engine, pins, room, host, resume_within_s)
    harnesses.append(h)
    time.sleep(resume_within_s if resume_within_s < 1 else 0.1)
    host.come_back(identity)
    assert_held(h, host)
    tap(h)
    h.wait_for(lambda: h.daemon.counters.typed == 1, 60)
    assert host.typed() == transcribed(room), why
    h.wait_idle()


@pytest.mark.parametrize("gesture", ["double press", "cancel button"])
def test_a_double_press_or_the_cancel_button_drops_held_text_and_undo_then_erases_exactly_what_the_host_got(
    engine: WhisperEngine,
    pins: MockFactory,
    room: Path,
    transcribed: Callable[[Path], str],
    harnesses: list[Harness],
    caplog: pytest.LogCaptureFixture,
    gesture: str,
) -> None:
    host = MovableHost()
    h = dictate_until_the_host_left(engine, pins, room, host, resume_within_s=60, cancel_pin=22)
    harnesses.append(h)
    host.come_back("1")  # re-enumerated
    assert_held(h, host)
    with caplog.at_level(logging.WARNING, logger="voxkey.typist"):
        if gesture == "double press":
            h.double_tap()
        else:
            h.daemon.events.put(ButtonEdge("press", time.monotonic(), "cancel"))
        h.wait_for(lambda: not h.daemon.pipeline.typing and h.light_state() is not LightState.TEXT_WAITING, 30)
    expected = transcribed(room)
    assert host.typed() == expected[:FIRST_PART]  # nothing of the rest arrived
    dropped = expected[FIRST_PART:]
    assert any(repr(dropped) in record.getMessage() for record in caplog.records), "drop logged with its text"
    assert h.daemon.counters.errors == 0  # the user asked for it
    time.sleep(h.daemon.config.button.double_press_s + 0.1)
    h.double_tap()  # undo: exactly the characters the host got
    h.wait_for(lambda: host.backspaces() > 0, 30)
    h.wait_idle()
    assert host.backspaces() == FIRST_PART
    assert host.screen() == ""
