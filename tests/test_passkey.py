"""The spoken pairing code through the daemon: the host asks, the user says it, BlueZ gets it, the host never.

Real whisper (tiny.en) hears espeak-ng speech played as the microphone; the
Bluetooth side is the agent's passkey source, called as the agent calls it.
``tests/transports/test_bluetooth_passkey.py`` tests the agent, the kernel case
the real pairing.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from tests.daemon_harness import (
    Harness,
    PairingRecorder,
    harnesses_fixture,
    make_config,
    silence_fixture,
    whisper_fixture,
)
from tests.speech_fixtures import espeak
from voxkey.asr import Transcript, WhisperEngine
from voxkey.audio import SAMPLE_RATE, write_wav
from voxkey.passkey import CODE_AUDIO_CTX, PasskeyEngine, PasskeySource, PasskeyWanted, PasskeyWithdrawn, SpokenPasskey
from voxkey.ui import LightState

engine = whisper_fixture()
quiet_room = silence_fixture(6.0)
harnesses = harnesses_fixture()

DEVICE = "/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF"


class PasskeyPairing(PairingRecorder):
    """The peripheral's pairing control, with the agent's passkey source."""

    source: PasskeySource | None = None

    def set_passkey_source(self, source: PasskeySource | None) -> None:
        self.source = source


def spoken(text: str, directory: Path) -> tuple[Path, float]:
    """espeak-ng saying ``text`` after 0.6 s of room silence, 2.5 s of silence after; and how long to hold."""
    speech = espeak(text, directory, text.replace(" ", "_"))
    gap = np.zeros(int(0.6 * SAMPLE_RATE), np.int16)
    path = directory / f"{text.replace(' ', '_')}-room.wav"
    write_wav(path, np.concatenate([gap, speech, np.zeros(int(2.5 * SAMPLE_RATE), np.int16)]))
    return path, 0.6 + speech.size / SAMPLE_RATE + 0.3


@pytest.fixture(scope="module")
def codes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, float]]:
    directory = tmp_path_factory.mktemp("codes")
    return {text: spoken(text, directory) for text in ("four seven zero nine one two", "four seven zero")}


def test_the_spoken_code_goes_to_bluez_and_never_to_the_host(
    engine: WhisperEngine,
    pins: MockFactory,
    quiet_room: Path,
    harnesses: list[Harness],
    codes: dict[str, tuple[Path, float]],
) -> None:
    pairing = PasskeyPairing()
    h = Harness(make_config("hold", long_press_s=1.0), engine, pins, quiet_room, pairing=pairing)
    harnesses.append(h)
    assert pairing.source is not None, "the daemon gives the Bluetooth side its passkey source"
    h.edges((0.0, "press"), (1.3, "release"))
    h.wait_for(lambda: h.light_state() is LightState.PAIRING, 5)

    future = pairing.source(DEVICE)  # BlueZ's RequestPasskey, as the agent passes it on
    h.wait_for(lambda: h.light_state() is LightState.SAY_CODE, 5)

    h.microphone, held = codes["four seven zero"]  # three digits: not a code, say it again
    h.speak(held)
    h.wait_for(lambda: LightState.CODE_RETRY in h.history(), 120)
    h.wait_for(lambda: h.light_state() is LightState.SAY_CODE, 10)
    assert not future.done() and h.daemon.hosts.passkey.misheard == 1
    time.sleep(h.daemon.config.button.double_press_s + 0.1)  # a press sooner after the release would cancel it
    assert pairing.calls == ["start"], "the press recorded the code instead of leaving pairing mode"

    h.microphone, held = codes["four seven zero nine one two"]
    h.speak(held)
    assert future.result(timeout=120) == "470912"
    h.wait_for(lambda: h.light_state() is LightState.PAIRING, 10)
    h.wait_for(lambda: h.daemon._idle(), 30)
    assert h.link.reports == [] and h.daemon.counters.typed == 0, "the code must never be typed"


def test_the_host_giving_up_ends_say_the_code(
    engine: WhisperEngine,
    pins: MockFactory,
    quiet_room: Path,
    harnesses: list[Harness],
) -> None:
    pairing = PasskeyPairing()
    h = Harness(make_config("hold", long_press_s=1.0), engine, pins, quiet_room, pairing=pairing)
    harnesses.append(h)
    h.edges((0.0, "press"), (1.3, "release"))
    h.wait_for(lambda: h.light_state() is LightState.PAIRING, 5)
    assert pairing.source is not None
    future = pairing.source(DEVICE)
    h.wait_for(lambda: h.light_state() is LightState.SAY_CODE, 5)
    future.cancel()  # the agent's Cancel: the host gave up, or the kernel's pairing timer ran out
    h.wait_for(lambda: h.light_state() is LightState.PAIRING, 5)
    h.tap()  # a press leaves pairing mode again
    h.wait_for(lambda: h.light_state() is LightState.IDLE, 5)
    assert pairing.calls == ["start", "stop"]


# --- SpokenPasskey on its own ---------------------------------------------------------------------------


def test_a_request_is_answered_only_with_six_digits() -> None:
    events: list[object] = []
    passkey = SpokenPasskey(events.append)
    future = passkey.request(DEVICE)
    (wanted,) = events
    assert isinstance(wanted, PasskeyWanted)
    passkey.wanted(wanted.request)
    assert passkey.waiting
    assert not passkey.heard("1 2 3 4 5", wanted.request) and not future.done() and passkey.waiting
    assert passkey.heard("The code is 0 0 1 2 3 4.", wanted.request)
    assert future.result(0) == "001234" and not passkey.waiting
    assert isinstance(events[-1], PasskeyWithdrawn)


def test_a_code_recording_skips_the_dictations_loop_repair(monkeypatch: pytest.MonkeyPatch) -> None:
    """The repair's cut can be a wrong code, and its two retries took 23.9 s of the guest's 30 s pairing timeout."""
    asked: list[dict[str, object]] = []

    def transcribe(samples: object, prompt: str | None = None, **options: object) -> Transcript:
        asked.append(options)
        return Transcript("1 2 3 4 5 6", 2.0, 0.1)

    engine = object.__new__(WhisperEngine)  # no model: only what PasskeyEngine asks of it matters here
    monkeypatch.setattr(engine, "transcribe", transcribe, raising=False)
    PasskeyEngine(engine).transcribe(np.zeros(2 * SAMPLE_RATE, np.int16))
    assert [options["repair_loops"] for options in asked] == [False]


@pytest.mark.parametrize(
    ("decoded", "windows", "heard"),
    [
        (["8 1 9 1 6 6"], [256], "8 1 9 1 6 6"),
        (["8 1 9 1 6 6 8 1 9 1 6", "8 1 9 1 6 6"], [256, CODE_AUDIO_CTX], "8 1 9 1 6 6"),  # began the code again
        (["8 1 9 1 6 6 8 1 9 1 6", "8 1 9 1 6 6 8"], [256, CODE_AUDIO_CTX], "8 1 9 1 6 6 8"),  # asked again
        (["8 1 9"], [256], "8 1 9"),  # half a code: the other half may be the next phrase
    ],
)
def test_a_code_recording_with_more_digits_than_a_code_is_decoded_again_with_a_wider_window(
    engine: WhisperEngine, monkeypatch: pytest.MonkeyPatch, decoded: list[str], windows: list[int], heard: str
) -> None:
    """Sized to the speech, tiny.en often began the code again after it: the wider window (``CODE_AUDIO_CTX``)
    mostly reads it right. Fewer digits are no loop: half a code may be one phrase of two."""
    texts, used = iter(decoded), []

    def decode(audio: object, params: dict[str, int], stop: object = None) -> list[str]:
        used.append(params["audio_ctx"])
        return [next(texts)]

    monkeypatch.setattr(engine, "_decode", decode)
    four_seconds = np.zeros(4 * SAMPLE_RATE, np.int16)
    assert PasskeyEngine(engine).transcribe(four_seconds).text == heard
    assert used == windows


def test_a_wider_window_asked_for_never_narrows_a_longer_recordings_own(
    engine: WhisperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """25 s of speech get 1280 positions by their own sizing, more than ``CODE_AUDIO_CTX``."""
    used: list[int] = []

    def decode(audio: object, params: dict[str, int], stop: object = None) -> list[str]:
        used.append(params["audio_ctx"])
        return ["1 2 3 4 5 6 1 2 3"]

    monkeypatch.setattr(engine, "_decode", decode)
    PasskeyEngine(engine).transcribe(np.zeros(25 * SAMPLE_RATE, np.int16))
    assert used == [1280, 1280]


def test_a_misheard_code_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Five of six digits are most of the pairing's secret: the journal gets how many, not which."""
    events: list[object] = []
    passkey = SpokenPasskey(events.append)
    passkey.request(DEVICE)
    (wanted,) = events
    assert isinstance(wanted, PasskeyWanted)
    passkey.wanted(wanted.request)
    caplog.set_level("DEBUG", logger="voxkey.passkey")
    assert not passkey.heard("9 9 3 1 6", wanted.request)
    assert "5 digits" in caplog.text and "9 9 3" not in caplog.text and "99316" not in caplog.text


def test_a_request_cancelled_before_the_loop_saw_it_is_not_shown() -> None:
    events: list[object] = []
    passkey = SpokenPasskey(events.append)
    passkey.request(DEVICE).cancel()
    wanted, withdrawn = events
    assert isinstance(wanted, PasskeyWanted) and isinstance(withdrawn, PasskeyWithdrawn)
    passkey.wanted(wanted.request)
    assert not passkey.waiting


def test_stopping_the_daemon_rejects_the_waiting_request() -> None:
    events: list[PasskeyWanted | PasskeyWithdrawn] = []
    passkey = SpokenPasskey(events.append)
    future = passkey.request(DEVICE)
    assert isinstance(events[0], PasskeyWanted)
    passkey.wanted(events[0].request)
    passkey.close()
    assert future.cancelled() and not passkey.waiting


def test_a_code_heard_after_the_host_gave_up_is_dropped() -> None:
    passkey = SpokenPasskey(lambda event: None)
    assert passkey.heard("1 2 3 4 5 6", None), "nothing waits: nothing to answer, and nothing is typed either"
    assert passkey.misheard == 0


def test_a_code_said_for_a_request_the_host_gave_up_on_is_not_entered_into_the_next() -> None:
    """The kernel tests saw it: a code said too late for one request, decoded slowly, arrived while the next
    request waited and was entered there (AuthenticationFailed before the right code was even said)."""
    events: list[PasskeyWanted | PasskeyWithdrawn] = []
    passkey = SpokenPasskey(events.append)
    first = passkey.request(DEVICE)
    passkey.wanted(events[-1].request)
    said_for_first = passkey.pending
    first.cancel()  # the kernel's 30 s ran out while voxkey was still decoding
    passkey.withdrawn(events[-1].request)
    second = passkey.request(DEVICE)
    passkey.wanted(events[-1].request)
    assert passkey.heard("2 2 0 0 3 1", said_for_first), "no 'say it again': the light already asks for the new code"
    assert not second.done() and passkey.waiting and passkey.misheard == 0
    assert passkey.heard("0 2 9 0 7 8", passkey.pending) and second.result(0) == "029078"


def test_a_code_said_in_two_breaths_gets_no_dictation_context() -> None:
    """The digits said first ("2 4 7") as the prompt of the rest invite whisper to say them twice."""
    from tests.test_dictation import CountingEngine, quiet, voiced
    from voxkey.asr import AsrSettings
    from voxkey.dictation import DictationSession
    from voxkey.passkey import PASSKEY_PROMPT

    class Whisper(CountingEngine):
        def __init__(self) -> None:
            super().__init__()
            self.settings = AsrSettings(context_words=8)  # the daemon's default
            self.prompts: list[str] = []

        def transcribe(self, samples: object, prompt: str | None = None, **options: object) -> Transcript:
            self.prompts.append(prompt or "")
            said = "2 4 7" if len(self.prompts) == 1 else "9 1 3"
            return Transcript(f"2 4 7 {said}" if "2 4 7" in (prompt or "") else said, 1.5, 0.01)

    engine = Whisper()
    session = DictationSession(PasskeyEngine(engine), speculate=False)  # type: ignore[arg-type]
    session.start()
    session.feed(np.concatenate([quiet(0.3), voiced(1.5), quiet(0.8), voiced(1.5), quiet(1.5)]))
    assert session.finish().replace(".", "").split() == ["2", "4", "7", "9", "1", "3"]
    assert engine.prompts == [PASSKEY_PROMPT, PASSKEY_PROMPT]


def test_the_code_is_transcribed_on_the_device_even_with_a_speech_server() -> None:
    """The passkey is the pairing's secret: it never goes to ``asr.remote``'s server."""
    from voxkey.passkey import PASSKEY_PROMPT, PasskeyEngine
    from voxkey.remote.engine import RemoteEngine

    heard: list[str | None] = []

    class Local:
        def transcribe(self, samples: object, prompt: str | None = None, **options: object) -> str:
            heard.append(prompt)
            return "4 7 0 9 1 2"

    remote = RemoteEngine.__new__(RemoteEngine)  # only its local engine matters here
    remote.local = Local()  # type: ignore[assignment]
    on_device = PasskeyEngine(remote)
    assert on_device.engine is remote.local
    assert on_device.transcribe(np.zeros(16000, np.int16), prompt="earlier words") == "4 7 0 9 1 2"
    assert heard == [f"{PASSKEY_PROMPT} earlier words"]
