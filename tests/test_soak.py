"""Soak: 1,000 button cycles through the real daemon, whisper included; nothing may accumulate or slow down.

Each cycle is a press on a MockFactory pin. Seven in ten are dictations of a
short real recording; the others exercise the other paths: a dictation undone
by a double tap, a dictation cancelled with the cancel button, and a lone tap.
After every cycle the daemon must be idle again; the host's screen must show
exactly what the sequence implies.

Bounds, measured between cycle 20 (warm: model, allocator pools and caches
settled) and the last cycle, with the daemon idle:
- threads: no growth (the same count);
- open file descriptors: no growth;
- RSS: at most 16 MiB growth (whisper's and numpy's allocator pools make a
  few MiB of jitter; a per-cycle leak of one recording, ~50 KiB, would add
  ~49 MiB over 980 cycles and a leaked whisper state far more);
- no slowdown: the process CPU time of the last 100 cycles is at most 1.5
  times that of cycles 21-120 (the same mix of cycle kinds). CPU time, not
  wall time, so a busy CI machine does not fake a slowdown; a structure
  that grows per cycle and is walked per cycle (a list of all dictations,
  a log buffer) would show here long before it shows in RSS.
The figures are printed (run with ``-s``) and saved as test properties.
``VOXKEY_SOAK_CYCLES`` lowers the count only to debug (at least 220 keep the
slowdown windows apart).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from tests.daemon_harness import BUTTON, MODEL, SPEECH, make_config
from tests.hosts import CaptureLink
from voxkey.asr import AsrSettings, WhisperEngine
from voxkey.audio import AudioSource, WavFileSource, read_wav, write_wav
from voxkey.config import Config
from voxkey.daemon import Daemon, RunOptions
from voxkey.dictation import transcribe_file
from voxkey.transports.host import Links
from voxkey.ui import ButtonEdge

pytestmark = pytest.mark.slow

CYCLES = int(os.environ.get("VOXKEY_SOAK_CYCLES", "1000"))  # fewer only to debug
WARM_UP = min(20, CYCLES)
RSS_BOUND_MIB = 16.0
WINDOW = 100  # cycles per slowdown window
SLOWDOWN_BOUND = 1.5
CANCEL_PIN = 22


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


class Microphone:
    """What the room sounds like at the next press: a phrase (delivered at once) or silence (in real time)."""

    def __init__(self, speech: Path, silence: Path, config: Config) -> None:
        self.speech, self.silence, self.config = speech, silence, config
        self.next_is_speech = True

    def __call__(self) -> AudioSource:
        if self.next_is_speech:
            return WavFileSource(self.speech, self.config.audio, realtime=False, auto_listen=True)
        return WavFileSource(self.silence, self.config.audio, realtime=True, auto_listen=False)


def wait(condition: object, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "soak cycle timed out"
        time.sleep(0.005)


def test_soak_1000_cycles(pins: MockFactory, tmp_path: Path, record_property: object) -> None:
    samples, _ = read_wav(SPEECH / "3752-4944-0002.wav")
    speech = tmp_path / "phrase.wav"
    write_wav(speech, samples[: int(1.8 * 16000)])  # "In the valley of ...": short, so whisper is quick
    silence = tmp_path / "silence.wav"
    write_wav(silence, np.zeros(16000 * 3, np.int16))

    config = make_config("hold")
    # a shorter double-press window than the default 0.4 s: every cycle waits it out, 1,000 times
    button = dataclasses.replace(config.button, cancel_pin=CANCEL_PIN, double_press_s=0.3)
    config = dataclasses.replace(config, button=button)
    engine = WhisperEngine(AsrSettings(model=MODEL, threads=1))
    phrase = transcribe_file(engine, speech, config.vad, config.audio).text
    assert phrase, "the soak phrase must transcribe to something"
    microphone = Microphone(speech, silence, config)
    host = CaptureLink()
    daemon = Daemon(config, RunOptions(), audio_factory=microphone, link_factory=lambda c: Links([host]), engine=engine)
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    assert daemon.ready.wait(60)
    button, cancel = pins.pin(BUTTON), pins.pin(CANCEL_PIN)
    screen: list[str] = []  # what each typed dictation added, in order
    expected_typed = 0

    def idle() -> bool:
        return daemon._idle()  # nothing recorded, transcribed or waiting to be typed

    def dictate() -> None:
        nonlocal expected_typed
        microphone.next_is_speech = True
        typed_before = daemon.counters.typed
        button.drive_low()
        wait(lambda: daemon.counters.typed == typed_before + 1)
        button.drive_high()
        screen.append((" " if screen else "") + phrase)
        expected_typed += 1

    def double_tap() -> float:
        """Two 50 ms taps 100 ms apart, stamped exactly as the terminal's 'u' key does: a loaded machine
        may oversleep a real 50 ms tap into a dictation, and the soak is about resources, not timing.
        Returns the last edge's stamp: the next cycle's press must not come before it."""
        microphone.next_is_speech = False
        now = time.monotonic()
        for offset, kind in ((0.0, "press"), (0.05, "release"), (0.15, "press"), (0.2, "release")):
            daemon.events.put(ButtonEdge(kind, now + offset))  # type: ignore[arg-type]
        return now + 0.2

    def tap() -> None:
        microphone.next_is_speech = False
        button.drive_low()
        button.drive_high()

    def after_the_window() -> None:
        """Wait until a press can no longer fall into the last dictation's window (it would cancel it).

        Only what is left of the window since that recording stopped: whisper and typing usually used
        it up already, so a cycle does work instead of sleeping a fixed window 1,100 times.
        """
        stopped_at = daemon.pipeline.situation().last_stopped_at  # the daemon's clock: time.monotonic()
        if stopped_at is not None:
            time.sleep(max(0.0, stopped_at + config.button.double_press_s + 0.05 - time.monotonic()))

    marks: dict[int, tuple[int, int, float]] = {}
    kinds = [cycle % 10 for cycle in range(1, CYCLES + 1)]
    cpu_s: list[float] = []  # process CPU time of each cycle
    started = time.monotonic()
    for cycle in range(1, CYCLES + 1):
        cycle_cpu = time.process_time()
        kind = cycle % 10
        if kind == 7:  # a dictation, then undo it with two taps
            dictate()
            wait(idle)
            after_the_window()
            undone = daemon.counters.undone + 1
            last_edge = double_tap()
            wait(lambda: daemon.counters.undone == undone)  # noqa: B023 - waited for right here
            screen.pop()
            time.sleep(max(0.0, last_edge - time.monotonic()))
        elif kind == 8:  # a dictation cancelled with the cancel button before it is typed
            microphone.next_is_speech = True
            cancelled = daemon.counters.cancelled + 1
            button.drive_low()
            cancel.drive_low()
            cancel.drive_high()
            button.drive_high()
            wait(lambda: daemon.counters.cancelled == cancelled)  # noqa: B023 - waited for right here
        elif kind == 9:  # a lone tap: nothing happens
            tap()
        else:
            dictate()
        wait(idle)
        cpu_s.append(time.process_time() - cycle_cpu)
        after_the_window()  # no cycle may fall into the previous one's window
        if cycle in (WARM_UP, CYCLES):
            marks[cycle] = (threads(), open_fds(), rss_mib())

    elapsed = time.monotonic() - started
    daemon.request_stop("soak over")
    runner.join(60)
    engine.close()

    (t0, f0, r0), (t1, f1, r1) = marks[WARM_UP], marks[CYCLES]
    early = sum(cpu_s[WARM_UP : WARM_UP + WINDOW]) / WINDOW
    late = sum(cpu_s[-WINDOW:]) / WINDOW
    figures = (
        f"soak: {CYCLES} cycles in {elapsed:.0f} s; threads {t0} -> {t1}, fds {f0} -> {f1}, "
        f"RSS {r0:.1f} -> {r1:.1f} MiB (+{r1 - r0:.1f}, bound {RSS_BOUND_MIB:.0f}), "
        f"CPU per cycle {early * 1000:.0f} -> {late * 1000:.0f} ms (x{late / early:.2f}, bound x{SLOWDOWN_BOUND})"
    )
    print(figures)
    for name, value in (
        ("threads", (t0, t1)),
        ("fds", (f0, f1)),
        ("rss_mib", (round(r0, 1), round(r1, 1))),
        ("cpu_ms_per_cycle", (round(early * 1000), round(late * 1000))),
    ):
        record_property(name, value)  # type: ignore[operator]

    assert daemon.counters.typed == expected_typed
    assert daemon.counters.cancelled == kinds.count(8)
    assert daemon.counters.undone == kinds.count(7)
    assert daemon.counters.errors == 0
    assert host.screen() == "".join(screen)
    assert t1 <= t0, figures
    assert f1 <= f0, figures
    assert r1 - r0 <= RSS_BOUND_MIB, figures
    if CYCLES >= WARM_UP + 2 * WINDOW:
        assert late <= SLOWDOWN_BOUND * early, figures
