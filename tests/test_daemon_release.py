"""No key stays held on the host: the daemon's release of every key, checked from the host's side.

A boot keyboard report is the whole keyboard state: after a report with a key
in it, the host holds that key (and auto-repeats it) until a later report says
otherwise. ``HoldingHost`` keeps exactly that state, so each test can ask
what the host holds after the daemon started, stopped or met a failing link.
Only the daemon's public surface is used: ``Daemon(config, options,
link_factory=..., engine=...)``, ``run()``, ``request_stop()``, ``counters``.
"""

from __future__ import annotations

import threading
from pathlib import Path

from tests.daemon_harness import NO_LEDS, SHORT, US, HoldingHost, Running, make_config, silence_fixture, whisper_fixture
from voxkey.asr import WhisperEngine
from voxkey.config import Config, OutputSettings
from voxkey.daemon import Daemon, RunOptions
from voxkey.errors import HostUnavailableError, TransportError
from voxkey.hid import RELEASE_ALL
from voxkey.keymap import decode
from voxkey.transports.host import Links
from voxkey.transports.usb import UsbHidLink

engine = whisper_fixture()


silence = silence_fixture(2.0)


def usb_config(**output: object) -> Config:
    """The harness's config without an LED, on USB with ``output`` settings."""
    return make_config(leds=NO_LEDS, output=OutputSettings(transport="usb", **output))  # type: ignore[arg-type]


def dictating(host: HoldingHost, engine: WhisperEngine, **output: object) -> Running:
    """One dictation of the short recording, then the daemon stays up (no exit when idle)."""
    options = RunOptions(audio_file=SHORT, exit_when_idle=False)
    daemon = Daemon(usb_config(**output), options, link_factory=lambda c: Links([host]), engine=engine)
    return Running(daemon)


FAIL_AT = 4
"""The 4th report is the release of the 2nd character (press, release, press, release): that key is pressed."""


def test_a_link_error_mid_key_leaves_no_key_held_while_the_daemon_runs(engine: WhisperEngine) -> None:
    host = HoldingHost(fail_at=FAIL_AT, failure=TransportError("the link failed mid-key"))
    running = dictating(host, engine)
    try:
        running.wait_for(lambda: running.daemon.counters.errors == 1)
        assert len(decode(host.reports[: FAIL_AT - 1], US)) == 2
        assert host.reports[FAIL_AT - 2] != RELEASE_ALL, "the failure came right after a press"
        assert host.held() == b"", f"the host still holds {host.held().hex()} after the link failed"
    finally:
        running.stop()


def test_stopping_releases_a_key_the_host_was_left_holding(engine: WhisperEngine) -> None:
    """The host stopped taking reports right after a press (USB: it stopped polling): held until the stop."""
    host = HoldingHost(fail_at=FAIL_AT, failure=HostUnavailableError("the host stopped polling"))
    running = dictating(host, engine, host_wait_s=0.5)
    running.wait_for(lambda: running.daemon.counters.errors == 1)
    assert host.held() != b"", "the scenario: a press reached the host, its release did not"
    assert running.stop() == 0
    assert host.held() == b"", f"after the daemon stopped the host still holds {host.held().hex()}"


def test_the_daemon_releases_every_key_as_it_starts_over_usb(
    engine: WhisperEngine, silence: Path, tmp_path: Path
) -> None:
    """A voxkey killed mid-key left that key held: the next daemon's link lets it go before any dictation."""
    device = tmp_path / "hidg0"
    device.touch()
    started = threading.Event()
    reports_at_start: list[bytes] = []

    def link_factory(config: Config) -> Links:
        link = UsbHidLink(device)
        reports_at_start.extend(device.read_bytes()[i : i + 8] for i in range(0, device.stat().st_size, 8))
        started.set()
        return Links([link])

    daemon = Daemon(usb_config(), RunOptions(audio_file=silence), link_factory=link_factory, engine=engine)
    assert daemon.run() == 0
    assert started.is_set()
    assert reports_at_start == [RELEASE_ALL]
    assert device.read_bytes() == RELEASE_ALL, "silence types nothing: the start-up release is the only report"
