"""Stopping mid-typing (issue #14): SIGTERM is how systemd stops voxkey (``TimeoutStopSec`` then SIGKILL).

- With the host there, what is being typed is finished, nothing doubled, and the daemon exits well
  within the unit's stop timeout.
- With the host gone, stopping must not wait for it: the wait for a host (``output.host_wait_s``, 300 s
  by default) is longer than the stop timeout (60 s), and systemd would SIGKILL the daemon in the middle
  of it. The text waiting is dropped at once and logged with its characters (``voxkey.kept``).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from tests.daemon_harness import REPO, SPEECH_S, Harness, make_config, room_fixture, whisper_fixture
from tests.hosts import CaptureLink
from voxkey.asr import WhisperEngine
from voxkey.dictation import transcribe_file
from voxkey.wiring import install_signal_handlers


def stop_timeout_s() -> float:
    unit = (REPO / "systemd" / "voxkey.service").read_text()
    match = re.search(r"^TimeoutStopSec=(\d+)$", unit, re.MULTILINE)
    assert match, "voxkey.service sets TimeoutStopSec"
    return float(match[1])


engine = whisper_fixture()
room = room_fixture()


def sigterm_and_time_exit(h: Harness, bound_s: float) -> float:
    restore = install_signal_handlers(h.daemon)  # the handlers `voxkey run` installs
    try:
        sent = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)
        h.thread.join(bound_s)
        return time.monotonic() - sent
    finally:
        restore()


def test_sigterm_mid_typing_finishes_the_text_within_the_stop_timeout(
    engine: WhisperEngine, pins: MockFactory, room: Path
) -> None:
    link = CaptureLink(delay_s=0.02)  # a slow host: ~100 reports take 2 s, so the signal lands mid-text
    h = Harness(make_config("hold"), engine, pins, room, link=link)
    h.speak(SPEECH_S)
    assert link.first_report.wait(120)
    elapsed = sigterm_and_time_exit(h, stop_timeout_s())
    assert not h.thread.is_alive(), "the daemon did not stop within TimeoutStopSec"
    expected = transcribe_file(engine, room, h.daemon.config.vad, h.daemon.config.audio).text
    assert link.typed() == expected  # finished: nothing lost, nothing doubled
    assert link.reports[-1] == bytes(8)  # no key left down
    assert h.exit_code == 0
    print(f"SIGTERM mid-typing: {len(expected)} characters finished, exit {elapsed:.2f} s after the signal")
    assert elapsed < stop_timeout_s()


def test_sigterm_with_the_host_gone_does_not_wait_for_it(
    engine: WhisperEngine, pins: MockFactory, room: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The text waiting for the host is dropped at once and logged with its characters (the journal keeps it)."""
    link = CaptureLink(present=False)
    h = Harness(make_config("hold", host_wait_s=120.0), engine, pins, room, link=link)
    try:
        h.speak(SPEECH_S)
        # typing waits for the host
        h.wait_for(lambda: h.daemon.pipeline.typing and h.daemon.hosts.waiting_for_host, 120)
        with caplog.at_level(logging.WARNING, logger="voxkey.typist"):
            elapsed = sigterm_and_time_exit(h, 10.0)
        print(f"SIGTERM with the host gone: exit {elapsed:.2f} s after the signal")
        assert not h.thread.is_alive(), f"still waiting for the host {elapsed:.0f} s after SIGTERM"
        assert elapsed < stop_timeout_s()
        expected = transcribe_file(engine, room, h.daemon.config.vad, h.daemon.config.audio).text
        assert link.reports == []  # nothing typed into whatever host comes later
        logged = [record.getMessage() for record in caplog.records]
        assert any("voxkey is stopping" in line and repr(expected) in line for line in logged), logged
    finally:
        link.present.set()
        h.thread.join(60)


def test_after_sigkill_the_next_start_releases_every_key_first(tmp_path: Path) -> None:
    """SIGKILL between a key's press and its release leaves that key down on the host, auto-repeating.

    A killed process sends nothing more, and f_hid keeps answering the host's polls with the last report.
    Only the next start can release the key: its link must send an all-keys-up report as soon as it has
    the device, before (and whether or not) anything is typed.
    """
    from voxkey.hid import RELEASE_ALL
    from voxkey.transports.usb import UsbHidLink

    device = tmp_path / "hidg0"  # a plain file stands in for /dev/hidg0 (no UDC gating)
    device.write_bytes(b"")
    killed = UsbHidLink(device)
    killed.wait_for_host(None)
    killed.send(bytes([0, 0, 4, 0, 0, 0, 0, 0]), None)  # "a" pressed; then SIGKILL: nothing more is sent
    assert device.read_bytes().endswith(bytes([0, 0, 4, 0, 0, 0, 0, 0]))  # the host holds "a"
    device.write_bytes(b"")  # from here on: what the host gets after the restart (a file has offsets, hidg0 not)
    restarted = UsbHidLink(device)
    restarted.wait_for_host(None)  # the daemon's link is ready for a host
    written = device.read_bytes()
    assert written[:8] == RELEASE_ALL, f"after the restart the host still holds the key: {written.hex()}"
