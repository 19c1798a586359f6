"""What every daemon test needs, in one place: the model, the room, the config, a finger on the button, hosts.

The daemon tests (``test_daemon*.py``, ``test_faults_*.py``, ``test_passkey.py``,
``test_soak.py``) run the real ``Daemon`` with real whisper, a WAV recording
as the microphone and gpiozero's MockFactory pins; hardware is simulated only
at its boundary. Fixtures that differ only by a recording or a whisper setting
are made by the ``*_fixture`` functions here and named by the module that uses
them (``engine = whisper_fixture()``): the name ``engine`` is what makes a
test ``slow`` (``tests/conftest.py``).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from tests.hosts import CaptureLink
from voxkey.asr import AsrSettings, WhisperEngine
from voxkey.audio import WavFileSource, read_wav, write_wav
from voxkey.config import ButtonSettings, Config, DictationSettings, LedSettings, OutputSettings
from voxkey.daemon import Daemon, RunOptions
from voxkey.dictation import transcribe_file
from voxkey.errors import VoxkeyError
from voxkey.hid import RELEASE_ALL, USAGES
from voxkey.keymap import Layout, decode
from voxkey.transports.host import Links, PairingControl
from voxkey.ui import ButtonEdge, LightState

REPO = Path(__file__).resolve().parents[1]
SPEECH = REPO.parent / "shared" / "speech"
SHORT = SPEECH / "3752-4944-0002.wav"  # 3.2 s: "In the valley of the shadow of death he is with us"
SHORT_2 = SPEECH / "3752-4944-0000.wav"  # 3.3 s: "Captain Frere says that the scenery is delightful"
JFK = SPEECH / "jfk.wav"
MODEL = "tiny.en-q5_1"
BUTTON, LED = 17, 27
US = Layout.load("us")
SPEECH_S = 3.4  # the short recording plus a little: when the speaker is done
WAIT_S = 240.0
"""Bound on every wait for the daemon (whisper on a loaded 2-core machine); a hang fails instead."""
NO_LEDS = LedSettings(kind="none")


# --- fixtures, made per module ------------------------------------------------------------------------


def whisper_fixture(**asr: Any) -> Any:
    """A module-scoped fixture: the tiny whisper model on one thread (the machine is shared), loaded once."""

    @pytest.fixture(scope="module")
    def engine() -> Iterator[WhisperEngine]:
        loaded = WhisperEngine(AsrSettings(model=MODEL, threads=1, **asr))
        yield loaded
        loaded.close()

    return engine


def padded(source: Path, directory: Path, silence_s: float) -> Path:
    """The recording followed by silence: a microphone keeps delivering audio after the speaker stops."""
    samples, _ = read_wav(source)
    path = directory / f"{source.stem}+{silence_s:g}s.wav"
    write_wav(path, np.concatenate([samples, np.zeros(int(silence_s * 16000), np.int16)]))
    return path


def room_fixture(source: Path = SHORT, silence_s: float = 2.5) -> Any:
    """A module-scoped fixture: ``source`` followed by ``silence_s`` of silence (``padded``)."""

    @pytest.fixture(scope="module")
    def room(tmp_path_factory: pytest.TempPathFactory) -> Path:
        return padded(source, tmp_path_factory.mktemp(source.stem), silence_s)

    return room


def silence_fixture(seconds: float) -> Any:
    """A module-scoped fixture: a recording of ``seconds`` of silence (a quiet room)."""

    @pytest.fixture(scope="module")
    def silence(tmp_path_factory: pytest.TempPathFactory) -> Path:
        path = tmp_path_factory.mktemp("silence") / "silence.wav"
        write_wav(path, np.zeros(int(16000 * seconds), np.int16))
        return path

    return silence


def transcribed_fixture() -> Any:
    """A module-scoped fixture: what ``voxkey transcribe`` gives for a file (the module's ``engine``, the
    daemon's VAD and audio settings), each file transcribed once."""

    @pytest.fixture(scope="module")
    def transcribed(engine: WhisperEngine) -> Callable[[Path], str]:
        cache: dict[Path, str] = {}

        def text_of(path: Path) -> str:
            if path not in cache:
                cache[path] = transcribe_file(engine, path, Config().vad, Config().audio).text
            return cache[path]

        return text_of

    return transcribed


# --- the config ---------------------------------------------------------------------------------------


def make_config(mode: str = "hold", **changes: Any) -> Config:
    """Button on ``BUTTON`` (no debounce), a plain LED on ``LED``, tiny.en on one thread, USB, 0.8 s auto-silence.

    ``long_press_s`` and ``host_wait_s`` change those settings; any other keyword replaces a whole section.
    """
    config = Config(
        button=ButtonSettings(pin=BUTTON, mode=mode, bounce_s=0, long_press_s=changes.pop("long_press_s", 3.0)),  # type: ignore[arg-type]
        leds=LedSettings(kind="led", pin=LED),
        asr=AsrSettings(model=MODEL, threads=1),
        output=OutputSettings(transport="usb", host_wait_s=changes.pop("host_wait_s", 300.0)),
        dictation=DictationSettings(auto_silence_s=0.8),
    )
    return dataclasses.replace(config, **changes)


# --- a daemon with a finger on its button -------------------------------------------------------------


class TimedWavSource(WavFileSource):
    """The room, remembering when it started playing (the speaker's clock)."""

    opened_at = 0.0

    def open(self) -> None:
        super().open()
        self.opened_at = time.monotonic()


class Harness:
    """A running daemon with a finger on its button."""

    def __init__(
        self,
        config: Config,
        engine: WhisperEngine,
        pins: MockFactory,
        microphone: Path,
        link: CaptureLink | HoldingHost | None = None,
        pairing: PairingControl | None = None,
        **daemon_args: Any,
    ) -> None:
        self.link: CaptureLink | HoldingHost = link or CaptureLink()
        self.microphone = microphone
        self.sources: list[WavFileSource] = []
        self.daemon = Daemon(
            config,
            RunOptions(),
            audio_factory=self.open_microphone,
            link_factory=lambda c: Links([self.link], pairing),
            engine=engine,
            **daemon_args,
        )
        self.pin = pins.pin(BUTTON)
        self.led = pins.pin(LED)
        self.exit_code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.daemon.ready.wait(30), "daemon did not become ready"

    def open_microphone(self) -> WavFileSource:
        source = TimedWavSource(self.microphone, self.daemon.config.audio, realtime=True, auto_listen=False)
        self.sources.append(source)
        return source

    def _run(self) -> None:
        self.exit_code = self.daemon.run()

    def press(self) -> None:
        self.pin.drive_low()

    def release(self) -> None:
        self.pin.drive_high()

    def tap(self, held_s: float = 0.05) -> None:
        self.press()
        time.sleep(held_s)
        self.release()

    def edges(self, *steps: tuple[float, str]) -> float:
        """Edges stamped ``offset`` seconds from now, as the terminal's ``u`` key sends them: a loaded machine
        cannot stretch a tap into a dictation. Returns the time they are measured from."""
        now = time.monotonic()
        for offset, kind in steps:
            self.daemon.events.put(ButtonEdge(kind, now + offset))  # type: ignore[arg-type]
        return now

    def double_tap(self) -> None:
        self.edges((0.0, "press"), (0.05, "release"), (0.15, "press"), (0.2, "release"))

    def speak(self, seconds: float) -> None:
        """Hold the button while the speaker talks."""
        self.press()
        time.sleep(seconds)
        self.release()

    def wait_for(self, condition: Callable[[], bool], timeout: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out; typed so far: {self.link.typed()!r}"
            time.sleep(0.01)

    def wait_idle(self, timeout: float = WAIT_S) -> None:
        self.wait_for(lambda: self.light_state() is LightState.IDLE and self.daemon._idle(), timeout)

    def light_state(self) -> LightState:
        light = self.daemon.light
        return light.state if light is not None else LightState.IDLE

    def history(self) -> list[LightState]:
        light = self.daemon.light
        return list(light.history) if light is not None else []

    def stop(self) -> int | None:
        self.daemon.request_stop("test over")
        self.thread.join(60)
        assert not self.thread.is_alive()
        return self.exit_code


def harnesses_fixture() -> Any:
    """A fixture: the harnesses a test started; each one still running is stopped when the test ends."""

    @pytest.fixture
    def harnesses() -> Iterator[list[Harness]]:
        started: list[Harness] = []
        yield started
        for harness in started:
            if harness.thread.is_alive():
                harness.stop()

    return harnesses


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


class PairingRecorder:
    """The Bluetooth side of the long-press gesture, recorded (BlueZ itself is tested by the Bluetooth module)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.ended: concurrent.futures.Future[str | None] = concurrent.futures.Future()

    def start_pairing(self) -> concurrent.futures.Future[str | None]:
        self.calls.append("start")
        self.ended = concurrent.futures.Future()
        return self.ended

    def stop_pairing(self) -> None:
        self.calls.append("stop")
        if not self.ended.done():
            self.ended.set_result(None)

    def host_bonded(self, address: str) -> None:
        """BlueZ ends pairing mode by itself once a host bonds."""
        self.ended.set_result(address)


# --- hosts --------------------------------------------------------------------------------------------


class HoldingHost:
    """A host that holds what the last report holds, as a computer does with a boot keyboard.

    A boot keyboard report is the whole keyboard state: after a report with a key in it the host holds
    that key (and auto-repeats it) until a later report says otherwise. ``release_all`` does what every
    real link does (an all-keys-up report if the host holds any key), so a test sees whether the daemon
    called it. One send (1-based ``fail_at``) can fail with ``failure``; each send can take ``delay_s``
    (a slow host, so something can happen mid-text); ``on_report`` hears every report the host took, with
    its index, on the typist's thread, before the delay.
    """

    name = "holding-host"

    def __init__(
        self,
        fail_at: int | None = None,
        failure: VoxkeyError | None = None,
        delay_s: float = 0.0,
        on_report: Callable[[int, bytes], None] | None = None,
    ) -> None:
        self.reports: list[bytes] = []
        self.sends = 0
        self.fail_at = fail_at
        self.failure = failure
        self.delay_s = delay_s
        self.on_report = on_report
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
            index = len(self.reports) - 1
        if self.on_report is not None:
            self.on_report(index, report)
        if self.delay_s:
            time.sleep(self.delay_s)

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

    def typed(self) -> str:
        """Characters as the host received them, backspaces included."""
        with self.lock:
            return decode(list(self.reports), US)

    def backspaces(self) -> int:
        with self.lock:
            return sum(1 for report in self.reports if report[2] == USAGES["backspace"])
