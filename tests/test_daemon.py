"""The whole dictation cycle: MockFactory button pins, a real speech WAV as the microphone, real whisper.

The "microphone" is a WAV file played in real time from the moment the daemon
opens it (at the press, since audio runs only while listening), followed by
silence, like a room where someone speaks right after pressing. What the host
would receive is captured as HID reports and decoded with the host layout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from tests.daemon_harness import (
    BUTTON,
    JFK,
    LED,
    MODEL,
    REPO,
    SHORT,
    SHORT_2,
    SPEECH_S,
    US,
    Harness,
    PairingRecorder,
    harnesses_fixture,
    make_config,
    room_fixture,
    silence_fixture,
    transcribed_fixture,
    whisper_fixture,
)
from tests.hosts import CaptureLink, MediaKeyHost
from voxkey.asr import WhisperEngine
from voxkey.audio import AudioSettings, read_wav, write_wav
from voxkey.cli import main
from voxkey.clock import ManualClock
from voxkey.config import Config, DictationSettings
from voxkey.daemon import TICK_S, Daemon, RunOptions
from voxkey.hid import CONSUMER_EJECT, RELEASE_ALL
from voxkey.keymap import decode
from voxkey.notify import SystemdNotifier
from voxkey.transports.host import Links
from voxkey.transports.usb import UsbHidLink
from voxkey.ui import ButtonEdge, LightState
from voxkey.wiring import install_signal_handlers

engine = whisper_fixture()
room = room_fixture(SHORT, 2.5)
room_2 = room_fixture(SHORT_2, 2.5)
transcribed = transcribed_fixture()
harnesses = harnesses_fixture()


quiet_room = silence_fixture(6.0)


def is_subsequence(wanted: list[LightState], seen: list[LightState]) -> bool:
    it = iter(seen)
    return all(state in it for state in wanted)


# --- the cycle ----------------------------------------------------------------------------------------


def test_hold_cycle_types_what_transcribe_gives(
    engine: WhisperEngine, pins: MockFactory, room: Path, transcribed: Callable[[Path], str], harnesses: list[Harness]
) -> None:
    h = Harness(make_config("hold"), engine, pins, room)
    harnesses.append(h)
    assert h.light_state() is LightState.IDLE
    h.press()
    h.wait_for(lambda: h.light_state() is LightState.LISTENING, 5)
    assert h.led.state == 1  # listening: steady on
    time.sleep(SPEECH_S)
    h.release()
    h.wait_for(lambda: h.daemon.counters.typed == 1)
    h.wait_idle()
    expected = transcribed(room)
    assert "valley" in expected.lower()
    assert h.link.typed() == expected
    assert h.link.reports[-1] == RELEASE_ALL
    assert is_subsequence(
        [LightState.IDLE, LightState.LISTENING, LightState.TRANSCRIBING, LightState.TYPING, LightState.IDLE],
        h.history(),
    ), h.history()
    assert h.stop() == 0
    assert all(not s.listening for s in h.sources), "the microphone must be closed when not listening"


def test_toggle_mode_press_to_start_press_to_stop(
    engine: WhisperEngine, pins: MockFactory, room: Path, transcribed: Callable[[Path], str], harnesses: list[Harness]
) -> None:
    h = Harness(make_config("toggle"), engine, pins, room)
    harnesses.append(h)
    h.tap(0.1)
    h.wait_for(lambda: h.light_state() is LightState.LISTENING, 5)
    time.sleep(SPEECH_S)
    assert h.light_state() is LightState.LISTENING  # releasing the start press changed nothing
    h.tap(0.1)
    h.wait_for(lambda: h.daemon.counters.typed == 1)
    assert h.link.typed() == transcribed(room)


def test_auto_mode_stops_after_silence(
    engine: WhisperEngine, pins: MockFactory, room: Path, transcribed: Callable[[Path], str], harnesses: list[Harness]
) -> None:
    h = Harness(make_config("auto"), engine, pins, room)
    harnesses.append(h)
    h.tap(0.1)
    h.wait_for(lambda: h.daemon.counters.typed == 1, 30)  # nobody pressed again: the silence stopped it
    assert h.link.typed() == transcribed(room)


def test_auto_mode_gives_up_when_nothing_is_said(
    engine: WhisperEngine, pins: MockFactory, quiet_room: Path, harnesses: list[Harness]
) -> None:
    config = make_config("auto", dictation=DictationSettings(auto_silence_s=0.8, auto_no_speech_s=1.5))
    h = Harness(config, engine, pins, quiet_room)
    harnesses.append(h)
    h.tap(0.1)
    h.wait_for(lambda: h.daemon.counters.empty == 1, 20)
    assert h.link.reports == []


def test_double_tap_undoes_the_last_dictation(
    engine: WhisperEngine, pins: MockFactory, room: Path, transcribed: Callable[[Path], str], harnesses: list[Harness]
) -> None:
    """End to end; which characters an undo erases in every case is ``test_typist``'s."""
    h = Harness(make_config("hold"), engine, pins, room)
    harnesses.append(h)
    h.speak(SPEECH_S)
    h.wait_for(lambda: h.daemon.counters.typed == 1)
    h.wait_idle()
    assert h.link.screen() == transcribed(room)
    time.sleep(h.daemon.config.button.double_press_s)  # past the cancel window
    h.double_tap()
    h.wait_for(lambda: h.daemon.counters.undone == 1, 10)
    h.wait_idle()
    assert h.link.backspaces() == len(transcribed(room))
    assert h.link.screen() == ""
    assert LightState.UNDO in h.history()


@pytest.fixture
def plain_pins() -> Iterator[MockFactory]:
    """gpiozero's plain mock pins, for a second (cancel) button on pin 22."""
    factory = MockFactory()
    previous = Device.pin_factory
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = previous


def cancel_button_harness(engine: WhisperEngine, pins: MockFactory, room: Path, harnesses: list[Harness]) -> Harness:
    config = make_config("hold")
    config = dataclasses.replace(config, button=dataclasses.replace(config.button, cancel_pin=22))
    h = Harness(config, engine, pins, room)
    harnesses.append(h)
    return h


def test_cancel_button_types_nothing(
    engine: WhisperEngine, plain_pins: MockFactory, room: Path, harnesses: list[Harness]
) -> None:
    h = cancel_button_harness(engine, plain_pins, room, harnesses)
    h.press()
    h.wait_for(lambda: h.light_state() is LightState.LISTENING, 5)
    plain_pins.pin(22).drive_low()
    plain_pins.pin(22).drive_high()
    h.wait_for(lambda: h.daemon.counters.cancelled == 1, 5)
    h.release()
    h.wait_idle()  # nothing recorded, transcribed or waiting to be typed: nothing can come later
    assert h.link.reports == []
    assert h.daemon.counters.typed == 0 and h.daemon.counters.dictations == 0
    assert LightState.CANCELLED in h.history()
    h.stop()


def test_press_right_after_stop_cancels(
    engine: WhisperEngine, pins: MockFactory, room: Path, harnesses: list[Harness]
) -> None:
    h = Harness(make_config("hold"), engine, pins, room)
    harnesses.append(h)
    h.edges((0.0, "press"))
    time.sleep(SPEECH_S)
    released = time.monotonic()
    h.daemon.events.put(ButtonEdge("release", released))
    time.sleep(0.15)
    # A press 0.15 s after the release by the button's clock, however late this thread ran.
    h.daemon.events.put(ButtonEdge("press", released + 0.15))
    h.daemon.events.put(ButtonEdge("release", released + 0.2))
    h.wait_for(lambda: h.daemon.counters.cancelled == 1, 10)
    h.wait_idle()
    # Nothing waits for the window: what was typed by the time of the press is erased, exactly.
    assert h.link.screen() == ""
    assert h.link.backspaces() == len(h.link.typed()) - h.link.backspaces()


@pytest.fixture(scope="module")
def two_sentences_room(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two sentences with a one-second pause, then a long silence (the button may stay down)."""
    first, _ = read_wav(SHORT)
    second, _ = read_wav(SHORT_2)
    path = tmp_path_factory.mktemp("two") / "two.wav"
    write_wav(path, np.concatenate([first, np.zeros(16000, np.int16), second, np.zeros(12 * 16000, np.int16)]))
    return path


TWO_SENTENCES_S = 3.2 + 1.0 + 3.3


def test_a_finished_phrase_is_typed_while_the_button_is_held(
    engine: WhisperEngine,
    pins: MockFactory,
    two_sentences_room: Path,
    transcribed: Callable[[Path], str],
    harnesses: list[Harness],
) -> None:
    h = Harness(make_config("hold"), engine, pins, two_sentences_room)
    harnesses.append(h)
    h.press()
    h.wait_for(lambda: h.link.first_report.is_set(), 9)  # the first sentence, before any release
    typed_while_held = h.link.screen()
    assert h.daemon.pipeline.recording is not None and "valley" in typed_while_held.lower(), typed_while_held
    time.sleep(max(0.0, TWO_SENTENCES_S + 1.0 - (time.monotonic() - h.sources[0].opened_at)))
    h.release()
    h.wait_for(lambda: h.daemon.counters.dictations == 1 and h.daemon._idle())
    assert h.link.screen() == transcribed(two_sentences_room)
    assert h.link.screen().startswith(typed_while_held)
    assert h.daemon.counters.typed == 1  # one dictation, typed in pieces


def test_cancel_erases_what_was_typed_while_talking(
    engine: WhisperEngine, plain_pins: MockFactory, two_sentences_room: Path, harnesses: list[Harness]
) -> None:
    h = cancel_button_harness(engine, plain_pins, two_sentences_room, harnesses)
    h.press()
    h.wait_for(lambda: h.link.first_report.is_set(), 9)
    plain_pins.pin(22).drive_low()
    plain_pins.pin(22).drive_high()
    h.wait_for(lambda: h.daemon.counters.cancelled == 1, 5)
    h.release()
    h.wait_idle()
    time.sleep(0.5)
    typed = h.link.typed()
    assert "valley" in typed.lower()  # it had been typed ...
    assert h.link.screen() == ""  # ... and is gone, to the character
    assert h.link.backspaces() == len(typed) - h.link.backspaces()


def eject_config(gesture: str, **button: Any) -> Config:
    config = make_config("hold", audio=dataclasses.replace(AudioSettings(), min_recording_ms=700))
    return dataclasses.replace(
        config, button=dataclasses.replace(config.button, double_press_s=1.5, eject_gesture=gesture, **button)
    )


def eject_harness(
    gesture: str, engine: WhisperEngine, pins: MockFactory, microphone: Path, harnesses: list[Harness], **button: Any
) -> tuple[Harness, MediaKeyHost]:
    """A daemon with ``eject_gesture`` and generous gesture windows, typing to a host with media keys."""
    host = MediaKeyHost()
    h = Harness(eject_config(gesture, **button), engine, pins, microphone, link=host)
    harnesses.append(h)
    return h, host


def test_three_taps_send_eject_and_undo_nothing(
    engine: WhisperEngine, pins: MockFactory, quiet_room: Path, harnesses: list[Harness]
) -> None:
    """By the daemon's injected clock, which stands still: however late the loop runs on a loaded machine,
    the third tap is never "after the undo window" (by the wall clock it once flipped to undo)."""
    clock = ManualClock(1000.0)
    host = MediaKeyHost()
    h = Harness(eject_config("triple-tap"), engine, pins, quiet_room, link=host, clock=clock)
    harnesses.append(h)
    taps = [(1000.0 + at + d, kind) for at in (0.0, 0.15, 0.3) for d, kind in ((0.0, "press"), (0.05, "release"))]
    clock.set(taps[-1][0])  # the three taps have happened; the clock stays there, well inside the 1.5 s window
    for at, kind in taps:
        h.daemon.events.put(ButtonEdge(kind, at))  # type: ignore[arg-type]
    h.wait_for(lambda: h.daemon.counters.ejected == 1, 10)
    h.wait_idle()  # idle includes "no undo waiting for a third tap"
    assert host.media_keys == [CONSUMER_EJECT]
    assert LightState.UNDO not in h.history()


def test_with_triple_tap_two_taps_undo_once_the_window_passed_by_the_daemons_clock(
    engine: WhisperEngine, pins: MockFactory, quiet_room: Path, harnesses: list[Harness]
) -> None:
    """The one gesture that fires without an edge, through the daemon's loop and its injected clock."""
    clock = ManualClock(1000.0)
    config = eject_config("triple-tap")
    h = Harness(config, engine, pins, quiet_room, link=MediaKeyHost(), clock=clock)
    harnesses.append(h)
    for at, kind in ((1000.0, "press"), (1000.05, "release"), (1000.15, "press"), (1000.2, "release")):
        h.daemon.events.put(ButtonEdge(kind, at))  # type: ignore[arg-type]
    h.wait_for(lambda: h.daemon.gestures.undo_due_at is not None and h.daemon.pipeline.idle(), 10)
    clock.set(1000.2 + config.button.double_press_s - 0.01)
    time.sleep(TICK_S + 0.1)  # the loop wakes at least once a tick: not yet
    assert h.daemon.gestures.undo_due_at is not None and LightState.UNDO not in h.history()
    clock.set(1000.2 + config.button.double_press_s)
    h.wait_for(lambda: LightState.UNDO in h.history(), 5)
    h.wait_idle()


def test_cancel_button_with_nothing_to_cancel_sends_eject(
    engine: WhisperEngine, pins: MockFactory, quiet_room: Path, harnesses: list[Harness]
) -> None:
    h, host = eject_harness("cancel-button", engine, pins, quiet_room, harnesses, cancel_pin=22)
    pins.pin(22).drive_low()
    pins.pin(22).drive_high()
    h.wait_for(lambda: h.daemon.counters.ejected == 1, 10)
    h.press()  # while listening the same button cancels, and sends nothing
    h.wait_for(lambda: h.light_state() is LightState.LISTENING, 5)
    pins.pin(22).drive_low()
    pins.pin(22).drive_high()
    h.wait_for(lambda: h.daemon.counters.cancelled == 1, 5)
    h.release()
    h.wait_idle()
    assert host.media_keys == [CONSUMER_EJECT]
    assert host.reports == []


def test_eject_over_a_keyboard_without_media_keys_is_an_error_that_says_so(
    engine: WhisperEngine,
    pins: MockFactory,
    quiet_room: Path,
    harnesses: list[Harness],
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness(eject_config("cancel-button", cancel_pin=22), engine, pins, quiet_room)  # a USB-like host
    harnesses.append(h)
    pins.pin(22).drive_low()
    pins.pin(22).drive_high()
    h.wait_for(lambda: h.daemon.counters.errors == 1, 10)
    assert h.daemon.counters.ejected == 0
    assert "has no media keys" in caplog.text and "bluetooth" in caplog.text


def test_long_press_without_speech_enters_pairing_until_a_press_or_bluez_ends_it(
    engine: WhisperEngine, pins: MockFactory, quiet_room: Path, harnesses: list[Harness]
) -> None:
    recorder = PairingRecorder()
    h = Harness(make_config("hold", long_press_s=1.0), engine, pins, quiet_room, pairing=recorder)
    harnesses.append(h)
    h.edges((0.0, "press"), (1.3, "release"))
    h.wait_for(lambda: h.light_state() is LightState.PAIRING, 5)
    assert recorder.calls == ["start"]
    h.tap()  # a press leaves pairing mode and is not a dictation
    h.wait_for(lambda: h.light_state() is LightState.IDLE, 5)
    assert recorder.calls == ["start", "stop"]
    h.edges((0.0, "press"), (1.3, "release"))
    h.wait_for(lambda: h.light_state() is LightState.PAIRING, 5)
    recorder.host_bonded("AA:BB:CC:DD:EE:FF")  # BlueZ ends it by itself
    h.wait_for(lambda: h.light_state() is LightState.IDLE, 5)
    assert recorder.calls == ["start", "stop", "start"]
    assert h.daemon.counters.dictations == 0 and h.daemon.counters.pairing == 2
    assert h.link.reports == []


def test_long_press_with_speech_is_a_dictation(
    engine: WhisperEngine, pins: MockFactory, room: Path, transcribed: Callable[[Path], str], harnesses: list[Harness]
) -> None:
    recorder = PairingRecorder()
    h = Harness(make_config("hold", long_press_s=1.0), engine, pins, room, pairing=recorder)
    harnesses.append(h)
    h.speak(SPEECH_S)
    h.wait_for(lambda: h.daemon.counters.typed == 1)
    assert recorder.calls == []
    assert h.link.typed() == transcribed(room)


def test_max_length_stops_listening_with_a_signal(
    engine: WhisperEngine, pins: MockFactory, room: Path, harnesses: list[Harness]
) -> None:
    config = make_config("hold", audio=dataclasses.replace(AudioSettings(), max_recording_s=1.5))
    h = Harness(config, engine, pins, room)
    harnesses.append(h)
    h.press()
    h.wait_for(lambda: LightState.LIMIT in h.history(), 6)
    h.wait_for(lambda: h.light_state() is not LightState.LISTENING, 5)  # listening stopped while still held
    time.sleep(0.5)
    h.release()  # the release after the limit is not a new gesture
    h.wait_idle(30)
    assert h.daemon.counters.dictations == 1
    typed = h.link.typed().lower()
    assert typed and "with us" not in typed  # only the first 1.5 s were heard


@pytest.mark.slow  # two whisper dictations on a slow host; the order itself is test_ordering's, without whisper
def test_dictations_never_interleave(
    engine: WhisperEngine,
    pins: MockFactory,
    room: Path,
    room_2: Path,
    transcribed: Callable[[Path], str],
    harnesses: list[Harness],
) -> None:
    slow_host = CaptureLink(delay_s=0.02)  # ~2 s to type one dictation
    h = Harness(make_config("hold"), engine, pins, room, link=slow_host)
    harnesses.append(h)
    h.speak(SPEECH_S)
    h.wait_for(lambda: slow_host.first_report.is_set())
    time.sleep(h.daemon.config.button.double_press_s + 0.1)  # a press sooner after the release would cancel it
    h.microphone = room_2
    h.speak(SPEECH_S)  # the second dictation is recorded while the first is still being typed
    h.wait_for(lambda: h.daemon.counters.typed == 2, 90)
    assert slow_host.screen() == f"{transcribed(room)} {transcribed(room_2)}"


def test_waiting_for_host_then_typing_when_it_comes(
    engine: WhisperEngine, pins: MockFactory, room: Path, transcribed: Callable[[Path], str], harnesses: list[Harness]
) -> None:
    absent = CaptureLink(present=False)
    h = Harness(make_config("hold"), engine, pins, room, link=absent)
    harnesses.append(h)
    h.speak(SPEECH_S)
    h.wait_for(lambda: h.light_state() is LightState.WAITING_FOR_HOST, 30)
    seen = len(h.led.states)
    h.wait_for(lambda: len({change.state for change in h.led.states[seen:]}) == 2, 10)  # on and off: it blinks
    absent.present.set()  # the host is plugged in
    h.wait_for(lambda: h.daemon.counters.typed == 1)
    assert absent.typed() == transcribed(room)
    h.wait_idle()


def test_host_that_never_comes_is_an_error_not_a_crash(
    engine: WhisperEngine, pins: MockFactory, room: Path, harnesses: list[Harness]
) -> None:
    absent = CaptureLink(present=False)
    h = Harness(make_config("hold", host_wait_s=0.5), engine, pins, room, link=absent)
    harnesses.append(h)
    h.speak(SPEECH_S)
    h.wait_for(lambda: h.daemon.counters.errors == 1, 30)
    h.wait_for(lambda: h.light_state() is LightState.ERROR, 5)
    assert h.daemon.keyboard is not None and h.daemon.keyboard.pending_text == ""  # dropped (and logged)
    absent.present.set()
    time.sleep(0.5)
    assert absent.reports == []  # expired text never lands in a host that comes later
    assert h.thread.is_alive()


def test_sighup_reloads_the_config(
    engine: WhisperEngine, pins: MockFactory, room: Path, tmp_path: Path, harnesses: list[Harness]
) -> None:
    path = tmp_path / "voxkey.yaml"
    path.write_text(
        f"button:\n  pin: {BUTTON}\n  mode: hold\nleds:\n  kind: led\n  pin: {LED}\nasr:\n  model: {MODEL}\n"
    )
    from voxkey import config as config_module

    h = Harness(config_module.load(path), engine, pins, room)
    harnesses.append(h)
    restore = install_signal_handlers(h.daemon)
    try:
        path.write_text(path.read_text().replace("mode: hold", "mode: toggle"))
        os.kill(os.getpid(), signal.SIGHUP)
        h.wait_for(lambda: h.daemon.config.button.mode == "toggle", 10)
        path.write_text("button:\n  mode: sideways\n")  # a broken edit keeps the running config
        os.kill(os.getpid(), signal.SIGHUP)
        h.wait_for(lambda: h.light_state() is LightState.ERROR, 10)
        assert h.daemon.config.button.mode == "toggle"
    finally:
        restore()
    h.tap(0.1)  # the rebuilt button works, in toggle mode
    h.wait_for(lambda: h.light_state() is LightState.LISTENING, 5)


def test_sigterm_during_typing_finishes_the_text(
    engine: WhisperEngine, pins: MockFactory, transcribed: Callable[[Path], str]
) -> None:
    slow_host = CaptureLink(delay_s=0.01)
    options = RunOptions(audio_file=JFK, exit_when_idle=False)
    daemon = Daemon(make_config("hold"), options, link_factory=lambda c: Links([slow_host]), engine=engine)
    restore = install_signal_handlers(daemon)

    def terminate_while_typing() -> None:
        slow_host.first_report.wait(60)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_while_typing, daemon=True)
    killer.start()
    try:
        exit_code = daemon.run()  # in the main thread: where Python delivers signals
    finally:
        restore()
    killer.join(5)
    expected = transcribed(JFK)
    assert len(expected) > 80
    assert exit_code == 0
    assert slow_host.typed() == expected  # all of it, although SIGTERM came in the middle
    assert slow_host.reports[-1] == RELEASE_ALL


def test_sd_notify_ready_after_model_status_and_watchdog(
    engine: WhisperEngine,
    pins: MockFactory,
    room: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    harnesses: list[Harness],
) -> None:
    address = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(address)
    server.settimeout(10)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    try:
        h = Harness(make_config("hold"), engine, pins, room, notifier=SystemdNotifier(address))
        harnesses.append(h)
        messages: list[str] = []
        while not any("WATCHDOG=1" in m for m in messages) or not any("READY=1" in m for m in messages):
            messages.append(server.recv(4096).decode())
        first_ready = next(i for i, m in enumerate(messages) if "READY=1" in m)
        assert "STATUS=loading the speech model" in messages[:first_ready]
        assert "STATUS=idle" in messages[first_ready]
        h.speak(SPEECH_S)
        while not any("STATUS=typing" in m for m in messages):
            messages.append(server.recv(4096).decode())
        h.stop()  # joins the daemon thread: everything it sent is queued on the socket now
        server.settimeout(0.5)
        tail: list[str] = []
        with contextlib.suppress(TimeoutError):
            while True:  # watchdog pings and status lines may come before STOPPING=1
                tail.append(server.recv(4096).decode())
        assert any("STOPPING=1" in m for m in tail)
    finally:
        server.close()


def test_usb_gadget_file_receives_the_reports(
    engine: WhisperEngine, pins: MockFactory, room: Path, tmp_path: Path, transcribed: Callable[[Path], str]
) -> None:
    """The real USB link writing to a temp file in place of /dev/hidg0."""
    device = tmp_path / "hidg0"
    device.touch()
    options = RunOptions(audio_file=room)
    config = make_config("hold")
    daemon = Daemon(config, options, link_factory=lambda c: Links([UsbHidLink(device)]), engine=engine)
    assert daemon.run() == 0
    data = device.read_bytes()
    reports = [data[i : i + 8] for i in range(0, len(data), 8)]
    assert decode(reports, US) == transcribed(room)


# --- the command line ---------------------------------------------------------------------------------


def test_bad_config_stops_start_up_with_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("button:\n  source: terminal\n  mode: hold\nleds:\n  kind: blinky\n")
    assert main(["run", "--config", str(bad), "--audio-file", str(JFK)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"voxkey: error: {bad}:5: leds.kind must be one of none, led, pwm, rgb, apa102, not 'blinky'"


@pytest.mark.slow  # two fresh processes load whisper: half a minute or more on a busy 2-core machine
def test_readme_quick_start_prints_the_jfk_sentence(transcribed: Callable[[Path], str]) -> None:
    """The README's main command, as a user runs it from the repository root."""
    env = dict(os.environ, VOXKEY_MODEL_DIR=str(REPO.parent / "shared" / "models"))
    command = [
        sys.executable,
        "-m",
        "voxkey",
        "run",
        "--config",
        "examples/simulate.yaml",
        "--audio-file",
        "../shared/speech/jfk.wav",
    ]
    result = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == transcribed(JFK) + "\n"
    transcribe = [sys.executable, "-m", "voxkey", "transcribe", "--model", MODEL, "../shared/speech/jfk.wav"]
    reference = subprocess.run(transcribe, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert reference.returncode == 0, reference.stderr
    assert result.stdout == reference.stdout  # exactly what `voxkey transcribe` gives
    assert "ask not what your country can do for you" in result.stdout.lower()
    assert result.stderr == ""


def test_missing_microphone_is_an_error_until_it_returns(
    engine: WhisperEngine,
    pins: MockFactory,
    room: Path,
    tmp_path: Path,
    transcribed: Callable[[Path], str],
    harnesses: list[Harness],
) -> None:
    h = Harness(make_config("hold"), engine, pins, tmp_path / "unplugged.wav")  # no such device
    harnesses.append(h)
    assert h.daemon.counters.errors == 0  # a start-up check failure is shown, not counted
    h.speak(0.5)
    h.wait_for(lambda: h.daemon.counters.errors == 1, 10)
    h.wait_for(lambda: h.light_state() is LightState.ERROR, 5)
    assert h.thread.is_alive() and h.daemon.counters.dictations == 0
    h.microphone = room  # plugged in again
    time.sleep(0.5)
    h.speak(SPEECH_S)
    h.wait_for(lambda: h.daemon.counters.typed == 1)
    assert h.link.typed() == transcribed(room)
