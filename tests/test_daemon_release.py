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
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from voxkey.asr import AsrSettings, WhisperEngine
from voxkey.audio import write_wav
from voxkey.config import ButtonSettings, Config, DictationSettings, LedSettings, OutputSettings
from voxkey.daemon import Daemon, RunOptions
from voxkey.errors import HostUnavailableError, TransportError, VoxkeyError
from voxkey.hid import RELEASE_ALL
from voxkey.keymap import Layout, decode
from voxkey.transports.host import Links
from voxkey.transports.usb import UsbHidLink

REPO = Path(__file__).resolve().parents[1]
SHORT = REPO.parent / "shared" / "speech" / "3752-4944-0002.wav"  # "In the valley of the shadow of death ..."
MODEL = "tiny.en-q5_1"
US = Layout.load("us")
WAIT_S = 240.0
"""Bound on every wait for the daemon (whisper on a loaded 2-core machine); a hang fails instead."""


@pytest.fixture(scope="module")
def engine() -> Iterator[WhisperEngine]:
    loaded = WhisperEngine(AsrSettings(model=MODEL, threads=1))
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def silence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("silence") / "silence.wav"
    write_wav(path, np.zeros(16000 * 2, np.int16))
    return path


def make_config(**output: object) -> Config:
    return Config(
        button=ButtonSettings(pin=17, mode="hold", bounce_s=0),
        leds=LedSettings(kind="none"),
        asr=AsrSettings(model=MODEL, threads=1),
        output=OutputSettings(transport="usb", **output),  # type: ignore[arg-type]
        dictation=DictationSettings(auto_silence_s=0.8),
    )


class HoldingHost:
    """A host that holds what the last report holds; one send (1-based) can fail with ``failure``."""

    name = "holding-host"

    def __init__(self, fail_at: int | None = None, failure: VoxkeyError | None = None) -> None:
        self.reports: list[bytes] = []
        self.sends = 0
        self.fail_at = fail_at
        self.failure = failure
        self.release_calls = 0
        self.lock = threading.Lock()

    def wait_for_host(self, deadline: float | None) -> None:
        return None

    def send(self, report: bytes, deadline: float | None) -> None:
        with self.lock:
            self.sends += 1
            if self.sends == self.fail_at and self.failure is not None:
                raise self.failure
            self.reports.append(report)

    def led_state(self) -> int:
        return 0

    def release_all(self) -> None:
        """What every real link does: an all-keys-up report if the host holds any key."""
        with self.lock:
            self.release_calls += 1
            if self.held():
                self.reports.append(RELEASE_ALL)

    def close(self) -> None:
        return None

    def held(self) -> bytes:
        """Modifier byte and key codes the host holds now (empty: nothing held)."""
        last = self.reports[-1] if self.reports else RELEASE_ALL
        return bytes(b for b in (last[0], *last[2:]) if b)


class Running:
    """``Daemon.run()`` in a thread, for tests that look at the host while the daemon lives."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.exit_code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.exit_code = self.daemon.run()

    def wait_for(self, condition: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert self.thread.is_alive(), "the daemon stopped"
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.01)

    def stop(self) -> int | None:
        self.daemon.request_stop("test over")
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive(), "the daemon did not stop"
        return self.exit_code


def dictating(host: HoldingHost, engine: WhisperEngine, **output: object) -> Running:
    """One dictation of the short recording, then the daemon stays up (no exit when idle)."""
    options = RunOptions(audio_file=SHORT, exit_when_idle=False)
    daemon = Daemon(make_config(**output), options, link_factory=lambda c: Links([host]), engine=engine)
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

    daemon = Daemon(make_config(), RunOptions(audio_file=silence), link_factory=link_factory, engine=engine)
    assert daemon.run() == 0
    assert started.is_set()
    assert reports_at_start == [RELEASE_ALL]
    assert device.read_bytes() == RELEASE_ALL, "silence types nothing: the start-up release is the only report"
