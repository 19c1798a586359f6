"""The dictation daemon: the one state machine that knows every part.

Threads and who owns what:

* the **main loop** (``Daemon.run``) owns all state. Everything else talks to
  it only by putting events on one queue: button edges (gpiozero's or the
  terminal's thread), "recording ended", "transcribed", "typed", signals.
  So there are no races in the gesture logic, and every decision is made in
  one place, in the order things happened;
* one **capture thread per recording** moves audio blocks from the source
  into the ``DictationSession`` (which transcribes finished phrases in its
  own worker while the user is still talking) and watches speech activity
  for ``auto`` mode and the long-press rule. The microphone is open only
  while listening, unless ``dictation.keep_microphone_open`` asks for
  pre-roll;
* one **transcriber thread** finishes sessions in order; the whisper model is
  loaded once, at start-up, before READY=1;
* one **typist thread** types texts in order, so the text of one dictation
  never interleaves with the next. With ``dictation.type_while_talking`` each
  phrase is handed to it as soon as it is transcribed, while the button is
  still held; otherwise the whole dictation once it is transcribed. Nothing
  waits for the cancel window (a press within ``double_press_s`` after
  stopping): such a press erases what the dictation typed.

SIGTERM stops listening, finishes transcribing and typing what was said, then
exits; SIGHUP re-reads the config file and applies it when nothing is in
flight.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TextIO

from voxkey import config as config_module
from voxkey.asr import WhisperEngine
from voxkey.audio import SAMPLE_RATE, AudioSource, MicrophoneSource, Samples, WavFileSource
from voxkey.config import Config
from voxkey.dictation import DictationSession, PhraseResult
from voxkey.errors import (
    AudioError,
    ConfigError,
    HostUnavailableError,
    TransportError,
    VoxkeyError,
)
from voxkey.hid import CONSUMER_EJECT
from voxkey.keymap import Layout, reports_for_strokes
from voxkey.memory import limit_heap_growth
from voxkey.notify import SystemdNotifier
from voxkey.text import commands
from voxkey.transports.base import Keyboard, MediaKeyLink, ReportLink
from voxkey.transports.terminal import TerminalLink
from voxkey.transports.usb import UsbHidLink
from voxkey.typing_policy import prepare_text, typing_layout
from voxkey.ui import ButtonEdge, Buttons, GpioButtons, LightState, StatusLight, TerminalButtons
from voxkey.vad import speech_ms

log = logging.getLogger(__name__)

TICK_S = 0.5
"""Longest sleep of the main loop: bounds watchdog pings and timer lateness."""
ERROR_SHOW_S = 3.0
"""How long the error pattern stays on after a failure that did not stop the daemon."""


# --- events (everything the main loop reacts to) -------------------------------------------------


@dataclass(frozen=True)
class RecordingEnded:
    number: int
    truncated: bool
    error: AudioError | None


@dataclass(frozen=True)
class SilenceReached:
    """``auto`` mode: speech was followed by ``auto_silence_s`` of silence (or nothing was said)."""

    number: int


@dataclass(frozen=True)
class Transcribed:
    number: int
    actions: list[commands.Action]
    error: VoxkeyError | None = None


@dataclass(frozen=True)
class PhraseReady:
    """A phrase of a dictation still being recorded or finished: its text, ready to type."""

    number: int
    phrase: PhraseResult


@dataclass(frozen=True)
class OutputDone:
    number: int
    error: VoxkeyError | None = None


@dataclass(frozen=True)
class HostWaiting:
    waiting: bool


@dataclass(frozen=True)
class Stop:
    reason: str


@dataclass(frozen=True)
class Reload:
    pass


Event = (
    ButtonEdge | RecordingEnded | SilenceReached | Transcribed | PhraseReady | OutputDone | HostWaiting | Stop | Reload
)


# --- the host link: one or two transports, and "waiting for host" -------------------------------


class HostLink:
    """A ``ReportLink`` over one or more links, preferring the first that has a host.

    With ``transport: both`` the USB gadget and Bluetooth are both offered and
    text goes to whichever host is connected (``prefer`` breaks ties). It also
    tells the daemon when typing is blocked waiting for a host, for the LED.
    """

    POLL_S = 0.1

    def __init__(self, links: list[ReportLink], on_waiting: Callable[[bool], None]) -> None:
        if not links:
            raise TransportError("no keyboard transport configured; set output.transport")
        self.links = links
        self.name = "+".join(link.name for link in links)
        self.active: ReportLink = links[0]
        self.on_waiting = on_waiting

    def _first_ready(self) -> ReportLink | None:
        for link in self.links:
            try:
                link.wait_for_host(time.monotonic())
            except HostUnavailableError:
                continue
            return link
        return None

    def wait_for_host(self, deadline: float | None) -> None:
        ready = self._first_ready()
        if ready is None:
            self.on_waiting(True)
            try:
                while ready is None:
                    if deadline is not None and time.monotonic() >= deadline:
                        names = ", ".join(link.name for link in self.links)
                        raise HostUnavailableError(f"no host connected ({names})")
                    time.sleep(self.POLL_S)
                    ready = self._first_ready()
            finally:
                self.on_waiting(False)
        if ready is not self.active:
            log.info("typing over %s", ready.name)
            self.active = ready

    def send(self, report: bytes, deadline: float | None) -> None:
        self.active.send(report, deadline)

    def send_consumer(self, usage: int, deadline: float | None) -> None:
        """A media key to the active host; the USB boot keyboard and the terminal have none."""
        link = self.active
        if not isinstance(link, MediaKeyLink):
            raise TransportError(
                f"the {link.name} keyboard typing now has no media keys; Eject goes to a bluetooth or uinput host"
            )
        link.send_consumer(usage, deadline)

    def led_state(self) -> int:
        return self.active.led_state()

    def release_all(self) -> None:
        for link in self.links:
            link.release_all()

    def close(self) -> None:
        for link in self.links:
            with contextlib.suppress(Exception):
                link.close()


class PairingControl(Protocol):
    """What the daemon needs from the Bluetooth side for the long-press gesture (``BluetoothPeripheral``)."""

    def start_pairing(self) -> object: ...

    def stop_pairing(self) -> None: ...

    @property
    def pairing(self) -> bool: ...


# --- what a dictation is while it moves through the pipeline -------------------------------------


@dataclass
class Dictation:
    number: int
    pressed_at: float
    session: DictationSession
    stopped_at: float | None = None
    stop_requested: bool = False
    cancelled: bool = False
    finished: bool = False
    """Transcribed to the end: no more pieces will come."""
    pieces: deque[list[commands.Action]] = dataclasses.field(default_factory=deque)
    """Actions of phrases transcribed but not yet handed to the typist, in order."""
    phrases: int = 0
    handed: bool = False
    """Some of its text went to the typist (a cancel must erase it)."""
    speech_seen: bool = False


@dataclass
class UndoRequest:
    number: int


@dataclass
class EjectRequest:
    """The Eject media key, in order with the text before it."""

    number: int


@dataclass
class EraseRequest:
    """Erase what a cancelled dictation typed (it was typed while the user talked, or before the cancel)."""

    number: int


OutputItem = Dictation | UndoRequest | EjectRequest | EraseRequest


@dataclass
class TypedRecord:
    """Characters a dictation typed, for undo."""

    number: int
    delivered: int = 0
    text_before: str = ""
    """What was typed before this dictation, so the space rule is right again after an undo."""


class SpeechActivity:
    """Follows voiced audio in a recording, for ``auto`` mode and the long-press rule."""

    def __init__(self, frame_ms: int, aggressiveness_settings: Any, min_speech_ms: int) -> None:
        self.vad_settings = aggressiveness_settings
        self.frame_len = SAMPLE_RATE * frame_ms // 1000
        self.min_speech_ms = min_speech_ms
        self.voiced_ms = 0
        self.position_s = 0.0
        self.last_voice_s = 0.0
        self._pending: list[Samples] = []
        self._pending_len = 0

    @property
    def speech_seen(self) -> bool:
        return self.voiced_ms >= self.min_speech_ms

    def feed(self, block: Samples) -> None:
        import numpy as np

        self._pending.append(block)
        self._pending_len += block.size
        if self._pending_len < self.frame_len:
            return
        data = np.concatenate(self._pending)
        usable = data.size - data.size % self.frame_len
        voiced = speech_ms(data[:usable], self.vad_settings)
        self.position_s += usable / SAMPLE_RATE
        if voiced:
            self.voiced_ms += voiced
            self.last_voice_s = self.position_s
        rest = data[usable:]
        self._pending = [rest] if rest.size else []
        self._pending_len = rest.size

    def silence_s(self) -> float:
        return self.position_s - self.last_voice_s


# --- the daemon -----------------------------------------------------------------------------------


AudioFactory = Callable[[], AudioSource]
ButtonsFactory = Callable[["Daemon"], Buttons | None]


@dataclass
class RunOptions:
    """How ``voxkey run`` was started, beyond the config file."""

    audio_file: Path | None = None
    """One press–speak–release over this WAV file, then exit."""
    output: str | None = None
    """Overrides ``output.transport`` (``terminal`` or ``uinput`` on a PC)."""
    exit_when_idle: bool | None = None
    """Exit once nothing is in flight after the first dictation; None: only with ``audio_file``."""
    stream: TextIO | None = None
    """Where the terminal transport prints (default stdout)."""


@dataclass
class Counters:
    """What happened since start; the soak test and STATUS= read these."""

    dictations: int = 0
    typed: int = 0
    cancelled: int = 0
    undone: int = 0
    ejected: int = 0
    empty: int = 0
    errors: int = 0
    pairing: int = 0


class Daemon:
    """Owns the dictation cycle; build with ``Daemon(config)`` and call ``run()``."""

    def __init__(
        self,
        config: Config,
        options: RunOptions | None = None,
        *,
        audio_factory: AudioFactory | None = None,
        link_factory: Callable[[Config], list[ReportLink]] | None = None,
        buttons_factory: ButtonsFactory | None = None,
        pairing: PairingControl | None = None,
        notifier: SystemdNotifier | None = None,
        engine: WhisperEngine | None = None,
    ) -> None:
        self.config = config
        self.options = options or RunOptions()
        exit_when_idle = self.options.exit_when_idle
        self._exit_when_idle = self.options.audio_file is not None if exit_when_idle is None else exit_when_idle
        self.counters = Counters()
        self.notifier = notifier or SystemdNotifier()
        # SimpleQueue: put() is reentrant, so signal handlers may use it while the loop is inside get().
        self.events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self.ready = threading.Event()
        self.stopped = threading.Event()
        self._audio_factory = audio_factory or self._default_audio
        self._link_factory = link_factory or build_links
        self._buttons_factory = buttons_factory or default_buttons
        self._pairing_control = pairing
        self._pairing_from_link = False
        self._engine = engine
        self._own_engine = engine is None
        self.light: StatusLight | None = None
        self.keyboard: Keyboard | None = None
        self._host_link: HostLink | None = None
        self._buttons: Buttons | None = None
        self._source: AudioSource | None = None
        self._capture_thread: threading.Thread | None = None
        self._recording: Dictation | None = None
        self._recording_ending = False
        self._numbers = 0
        self._pairing = False
        self._swallow_release = False
        self._last_tap_release: float | None = None
        self._taps = 0
        self._undo_due_at: float | None = None
        self._main_held = False
        self._transcribe_queue: queue.Queue[Dictation | None] = queue.Queue()
        self._type_queue: queue.Queue[tuple[OutputItem, list[commands.Action]] | None] = queue.Queue()
        self._transcribing: dict[int, Dictation] = {}
        self._output: deque[OutputItem] = deque()
        self._typing_busy = False
        self._waiting_for_host = False
        self._error_until = 0.0
        self._stopping: str | None = None
        self._reload_requested = False
        self._workers: list[threading.Thread] = []
        self._typed: TypedRecord | None = None
        self._last_stopped: Dictation | None = None
        self._last_typed_text = ""
        self._layout: Layout | None = None
        self._next_watchdog = 0.0
        self._watchdog_s = self.notifier.watchdog_interval_s()

    # --- start-up and shutdown ------------------------------------------------------------------

    def start(self) -> None:
        """Load the model and open every part; READY=1 once dictation can really start."""
        self.notifier.status("loading the speech model")
        self.light = StatusLight(self.config.leds)
        self.light.show(LightState.TRANSCRIBING)
        limit_heap_growth()  # before whisper and the threads allocate: see voxkey.memory
        if self._engine is None:
            self._engine = WhisperEngine(self.config.asr)
            self._engine.warm_up()
        self._open_output()
        for name, target in (("voxkey-transcriber", self._transcriber), ("voxkey-typist", self._typist)):
            worker = threading.Thread(target=target, name=name, daemon=True)
            worker.start()
            self._workers.append(worker)
        self._buttons = self._buttons_factory(self)
        self._check_microphone()
        self.light.show(LightState.IDLE)
        self.notifier.ready(self._status_text())
        self.ready.set()
        log.info(
            "ready: %s model, %s transport, %s mode",
            self._engine.name,
            self.keyboard_link_name,
            self.config.button.mode,
        )
        if self.options.audio_file is not None:
            now = time.monotonic()
            self.events.put(ButtonEdge("press", now))

    @property
    def keyboard_link_name(self) -> str:
        return self.keyboard.link.name if self.keyboard else "none"

    def _open_output(self) -> None:
        output = self.config.output
        base = Layout.load(output.layout)
        self._layout = base
        links = self._link_factory(self._effective_config())
        if self._pairing_control is None or self._pairing_from_link:
            # A Bluetooth link brings its peripheral, which does pairing mode for the long press.
            peripherals = [getattr(link, "peripheral", None) for link in links]
            self._pairing_control = next((p for p in peripherals if p is not None), None)
            self._pairing_from_link = self._pairing_control is not None
        link = HostLink(links, lambda waiting: self.events.put(HostWaiting(waiting)))
        self._host_link = link
        self.keyboard = Keyboard(link, typing_layout(base, output.unsupported_characters), output.host_wait_s)

    def _effective_config(self) -> Config:
        if self.options.output is None:
            return self.config
        output = dataclasses.replace(self.config.output, transport=self.options.output)  # type: ignore[arg-type]
        return dataclasses.replace(self.config, output=output)

    def _default_audio(self) -> AudioSource:
        if self.options.audio_file is not None:
            return WavFileSource(self.options.audio_file, self.config.audio, realtime=False, auto_listen=True)
        return MicrophoneSource(self.config.audio)

    def _check_microphone(self) -> None:
        """Open the audio source once at start so a missing mic shows at boot, not at the first press."""
        if self.options.audio_file is not None:
            return
        try:
            source = self._audio_factory()
            source.open()
        except AudioError as exc:
            log.error("%s", exc)
            self._show_error()
            return
        if self.config.dictation.keep_microphone_open:
            self._source = source
        else:
            source.close()

    def request_stop(self, reason: str = "stop requested") -> None:
        self.events.put(Stop(reason))

    def request_reload(self) -> None:
        self.events.put(Reload())

    def close(self) -> None:
        """Release everything; safe to call twice."""
        if self._buttons is not None:
            self._buttons.close()
            self._buttons = None
        if self._recording is not None:
            self._abort_recording()
        self._join_capture()
        if self._source is not None:
            self._source.close()
            self._source = None
        if self._workers:
            self._transcribe_queue.put(None)
            self._type_queue.put(None)
            for worker in self._workers:
                worker.join(timeout=30)
            self._workers.clear()
        if self._pairing_control is not None and self._pairing:
            with contextlib.suppress(VoxkeyError):
                self._pairing_control.stop_pairing()
        if self.keyboard is not None:
            self.keyboard.close()
            self.keyboard = None
        if self._engine is not None and self._own_engine:
            self._engine.close()
        self._engine = None
        if self.light is not None:
            self.light.close()
            self.light = None
        self.notifier.close()
        self.stopped.set()

    # --- the main loop --------------------------------------------------------------------------

    def run(self) -> int:
        """Start, serve until stopped, close. Returns the exit code."""
        try:
            self.start()
            self._loop()
        finally:
            self.notifier.stopping()
            self.close()
            self._finish_terminal_line()
        return 1 if self._stopping == "error" else 0

    def _loop(self) -> None:
        while True:
            self._ping_watchdog()
            if self._stopping and self._idle():
                log.info("stopped (%s)", self._stopping)
                return
            if self._reload_requested and self._idle():
                self._apply_reload()
            try:
                event = self.events.get(timeout=self._next_wakeup())
            except queue.Empty:
                event = None
            if event is not None:
                self._handle(event)
            self._fire_due_undo()
            self._release_ready_output()
            self._refresh_light()

    def _idle(self) -> bool:
        return (
            self._recording is None
            and not self._transcribing
            and not self._output
            and not self._typing_busy
            and self._capture_thread is None
            and self._undo_due_at is None
        )

    def _next_wakeup(self) -> float:
        now = time.monotonic()
        wake = now + TICK_S
        if self._undo_due_at is not None:
            wake = min(wake, self._undo_due_at)
        if self._error_until > now:
            wake = min(wake, self._error_until)
        if self._watchdog_s:
            wake = min(wake, self._next_watchdog)
        return max(0.0, wake - now)

    def _ping_watchdog(self) -> None:
        if not self._watchdog_s:
            return
        now = time.monotonic()
        if now >= self._next_watchdog:
            self.notifier.watchdog()
            self._next_watchdog = now + self._watchdog_s

    def _handle(self, event: Event) -> None:
        if isinstance(event, ButtonEdge):
            self._on_edge(event)
        elif isinstance(event, RecordingEnded):
            self._on_recording_ended(event)
        elif isinstance(event, SilenceReached):
            if self._recording is not None and self._recording.number == event.number:
                log.info("auto mode: silence, stopping")
                self._stop_recording(time.monotonic())
        elif isinstance(event, Transcribed):
            self._on_transcribed(event)
        elif isinstance(event, PhraseReady):
            self._on_phrase(event)
        elif isinstance(event, OutputDone):
            self._typing_busy = False
            if event.error is not None:
                log.error("%s", event.error)
                self.counters.errors += 1
                self._show_error()
            if self._exit_when_idle and self._stopping is None:
                self._stopping = "done"
        elif isinstance(event, HostWaiting):
            self._waiting_for_host = event.waiting
        elif isinstance(event, Stop):
            self._begin_stop(event.reason)
        elif isinstance(event, Reload):
            log.info("reload requested; applying when nothing is in flight")
            self.notifier.reloading()
            self._reload_requested = True

    # --- gestures -------------------------------------------------------------------------------

    def _on_edge(self, edge: ButtonEdge) -> None:
        if edge.button == "cancel":
            if edge.kind == "press":
                cancelled = self._cancel_latest("cancel button")
                if not cancelled and self.config.button.eject_gesture == "cancel-button":
                    self._request_eject()
            return
        if edge.kind == "press":
            self._main_held = True
            self._on_press(edge.at)
        else:
            self._main_held = False
            self._on_release(edge.at)

    def _on_press(self, at: float) -> None:
        button = self.config.button
        if self._stopping:
            return
        if self._pairing:
            self._end_pairing()
            self._swallow_release = True
            return
        if button.cancel_by_press_after_stop and self._cancel_in_window(at):
            self._swallow_release = True
            return
        recording = self._recording
        if recording is None:
            self._start_recording(at)
            return
        if button.mode == "hold" or self._recording_ending:
            return  # a bounce, or a press while the post-roll finishes
        self._swallow_release = True
        if at - recording.pressed_at < button.double_press_s:
            self._abort_recording()
            self._request_undo()
        else:
            self._stop_recording(at)

    def _on_release(self, at: float) -> None:
        if self._swallow_release:
            self._swallow_release = False
            return
        recording = self._recording
        if recording is None or self._recording_ending:
            return
        button = self.config.button
        held = at - recording.pressed_at
        is_tap = button.mode == "hold" and held < self.config.audio.min_recording_ms / 1000
        if self._undo_due_at is not None and not is_tap:
            self._reset_taps()  # not a third tap: the undo the two taps asked for goes before what this press does
            self._request_undo()
        if held >= button.long_press_s and not recording.speech_seen:
            self._abort_recording()
            self._start_pairing()
            return
        if button.mode != "hold":
            return  # toggle/auto: releasing the start press changes nothing
        if is_tap:
            self._abort_recording()
            self._on_tap(recording.pressed_at, at)
            return
        self._stop_recording(at)

    def _on_tap(self, pressed_at: float, released_at: float) -> None:
        """Count taps in a row: two undo; with ``eject_gesture: triple-tap`` the undo waits one window for a third."""
        button = self.config.button
        follows = self._last_tap_release is not None and pressed_at - self._last_tap_release <= button.double_press_s
        self._taps = self._taps + 1 if follows else 1
        self._last_tap_release = released_at
        if self._taps == 2 and button.eject_gesture == "triple-tap":
            self._undo_due_at = released_at + button.double_press_s
            return
        if self._taps >= 2:
            third = self._taps == 3
            self._reset_taps()
            if third:
                self._request_eject()
            else:
                self._request_undo()

    def _reset_taps(self) -> None:
        self._taps = 0
        self._last_tap_release = None
        self._undo_due_at = None

    def _fire_due_undo(self) -> None:
        """Two taps and no third within the window: the undo they asked for.

        While the button is down its release decides (a third tap that outlasts
        the window is still a tap: ``_on_release``), so the clock waits for it.
        """
        if self._undo_due_at is not None and not self._main_held and time.monotonic() >= self._undo_due_at:
            self._reset_taps()
            self._request_undo()

    def _cancel_in_window(self, at: float) -> bool:
        """A press soon after a dictation stopped cancels it: what it typed already is erased."""
        window = self.config.button.double_press_s
        recording = self._recording
        if recording is not None and self._recording_ending and recording.stopped_at is not None:
            if 0 <= at - recording.stopped_at <= window:  # still in its post-roll
                self._cancel_latest("press after stop")
                return True
            return False
        latest = self._last_stopped
        if latest is None or latest.cancelled or latest.stopped_at is None:
            return False
        if not 0 <= at - latest.stopped_at <= window:
            return False
        self._cancel(latest, "press after stop")
        return True

    def _cancel_latest(self, why: str) -> bool:
        """Cancel the recording, or else the newest dictation not typed yet; False if there was nothing."""
        if self._recording is not None:
            self._abort_recording()
            self.counters.cancelled += 1
            log.info("recording cancelled (%s)", why)
            self._flash(LightState.CANCELLED)
            return True
        for item in reversed(self._output):
            if isinstance(item, Dictation) and not item.cancelled:
                self._cancel(item, why)
                return True
        return False

    def _cancel(self, dictation: Dictation, why: str) -> None:
        """Nothing more of it is typed, and what it typed already is erased (in order with the rest)."""
        self._drop(dictation)
        self.counters.cancelled += 1
        outcome = "erasing what it typed" if dictation.handed else "nothing typed"
        log.info("dictation %d cancelled (%s): %s", dictation.number, why, outcome)
        self._flash(LightState.CANCELLED)

    def _drop(self, dictation: Dictation) -> None:
        dictation.cancelled = True
        dictation.pieces.clear()
        with contextlib.suppress(Exception):
            dictation.session.cancel()
        if not dictation.handed:
            return
        erase = EraseRequest(dictation.number)
        if dictation in self._output:
            self._output[self._output.index(dictation)] = erase
        else:
            self._output.append(erase)

    # --- recording ------------------------------------------------------------------------------

    def _start_recording(self, at: float) -> None:
        assert self._engine is not None
        self._join_capture()
        source: AudioSource | None = None
        try:
            source = self._source or self._audio_factory()
            # Listening starts before the device opens, so its very first block belongs to the recording.
            source.start_listening()
            source.open()
        except VoxkeyError as exc:
            log.error("%s", exc)
            self.counters.errors += 1
            self._show_error()
            if source is not None:
                source.stop_listening(post_roll=False)  # the next press starts a clean recording
                if source is not self._source:
                    source.close()
            return
        self._source = source
        self._numbers += 1
        number = self._numbers
        on_phrase = self._phrase_sender(number) if self.config.dictation.type_while_talking else None
        session = DictationSession(self._engine, self.config.vad, self.config.audio, on_phrase=on_phrase)
        session.start()
        recording = Dictation(number, at, session)
        self._recording = recording
        self._output.append(recording)  # its phrases may be typed while it records
        self._recording_ending = False
        self._capture_thread = threading.Thread(
            target=self._capture, args=(recording, source), name="voxkey-capture", daemon=True
        )
        self._capture_thread.start()
        log.debug("dictation %d: listening", recording.number)

    def _phrase_sender(self, number: int) -> Callable[[PhraseResult], None]:
        return lambda phrase: self.events.put(PhraseReady(number, phrase))

    def _capture(self, recording: Dictation, source: AudioSource) -> None:
        vad = self.config.vad
        activity = SpeechActivity(vad.frame_ms, vad, vad.min_speech_ms)
        dictation = self.config.dictation
        auto = self.config.button.mode == "auto"
        asked_to_stop = False
        min_post_roll = self.config.audio.min_post_roll_ms * SAMPLE_RATE // 1000
        fed = 0
        over = False
        try:
            for block in source.frames():
                if recording.cancelled or over:
                    continue
                recording.session.feed(block)
                fed += block.size
                stopped_at = source.buffer.recorded_at_stop
                if stopped_at is not None and fed >= stopped_at + min_post_roll and recording.session.settled:
                    # Released, and the speaker is not mid-phrase: the rest of the post-roll could only add
                    # silence. The recording ends here (a rule on the audio, so the text stays the same).
                    over = True
                    source.stop_listening(post_roll=False)
                    continue
                activity.feed(block)
                recording.speech_seen = activity.speech_seen
                if auto and not asked_to_stop:
                    silent = activity.silence_s()
                    if (activity.speech_seen and silent >= dictation.auto_silence_s) or (
                        not activity.speech_seen and activity.position_s >= dictation.auto_no_speech_s
                    ):
                        asked_to_stop = True
                        self.events.put(SilenceReached(recording.number))
        except Exception as exc:  # the loop must hear about any failure, or it waits forever
            log.exception("capture failed")
            self.events.put(RecordingEnded(recording.number, False, AudioError(f"audio capture failed: {exc}")))
            return
        self.events.put(RecordingEnded(recording.number, source.buffer.truncated, source.error))

    def _stop_recording(self, at: float) -> None:
        recording = self._recording
        if recording is None or self._recording_ending:
            return
        recording.stop_requested = True
        recording.stopped_at = at
        self._recording_ending = True
        if self._source is not None:
            self._source.stop_listening(post_roll=True)
        recording.session.release()
        log.debug("dictation %d: stopped after %.1f s", recording.number, at - recording.pressed_at)

    def _abort_recording(self) -> None:
        recording = self._recording
        if recording is None:
            return
        self._drop(recording)
        self._recording = None
        self._recording_ending = False
        if self._source is not None:
            self._source.stop_listening(post_roll=False)
        self._join_capture()
        self._release_source()

    def _join_capture(self) -> None:
        thread, self._capture_thread = self._capture_thread, None
        if thread is not None:
            thread.join(timeout=10)
            if thread.is_alive():
                log.error("audio capture did not stop; the audio device may be hung")

    def _release_source(self) -> None:
        if self._source is not None and not self.config.dictation.keep_microphone_open:
            self._source.close()
            self._source = None

    def _on_recording_ended(self, event: RecordingEnded) -> None:
        recording = self._recording
        if recording is None or recording.number != event.number:
            return  # an aborted recording's capture thread finishing
        self._recording = None
        self._recording_ending = False
        self._join_capture()
        self._release_source()
        if recording.stopped_at is None:
            recording.stopped_at = time.monotonic()
            if self._main_held:
                self._swallow_release = True  # the button is still down: its release is not a gesture
        if event.truncated:
            log.warning("dictation %d reached the maximum length (audio.max_recording_s)", recording.number)
            self._flash(LightState.LIMIT)
        if event.error is not None:
            log.error("%s", event.error)
            self.counters.errors += 1
            self._show_error()
        self.counters.dictations += 1
        self._last_stopped = recording
        self._transcribing[recording.number] = recording
        self._transcribe_queue.put(recording)

    # --- transcription and typing ---------------------------------------------------------------

    def _transcriber(self) -> None:
        while True:
            dictation = self._transcribe_queue.get()
            if dictation is None:
                return
            if dictation.cancelled:
                self.events.put(Transcribed(dictation.number, []))
                continue
            try:
                text = dictation.session.finish()
                streamed = dictation.session.on_phrase is not None
                actions = commands.interpret(text, self.config.commands) if text and not streamed else []
                self.events.put(Transcribed(dictation.number, actions))
            except VoxkeyError as exc:
                self.events.put(Transcribed(dictation.number, [], exc))
            except Exception as exc:  # never let one bad dictation kill the daemon
                log.exception("transcription failed")
                self.events.put(Transcribed(dictation.number, [], VoxkeyError(f"transcription failed: {exc}")))

    def _on_transcribed(self, event: Transcribed) -> None:
        dictation = self._transcribing.pop(event.number, None)
        if dictation is None:
            return
        if event.error is not None:
            log.error("dictation %d: %s", event.number, event.error)
            self.counters.errors += 1
            self._show_error()
        dictation.finished = True
        if event.actions and not dictation.cancelled:
            dictation.pieces.append(event.actions)
            dictation.phrases += 1
        if not dictation.phrases and not dictation.cancelled:
            self.counters.empty += 1
            log.info("dictation %d: nothing to type", dictation.number)

    def _on_phrase(self, event: PhraseReady) -> None:
        """A phrase of a dictation: typed as soon as everything before it is."""
        dictation = next((d for d in self._output if isinstance(d, Dictation) and d.number == event.number), None)
        if dictation is None or dictation.cancelled:
            return
        if not event.phrase.addition:
            return
        actions = commands.interpret(event.phrase.addition, self.config.commands, continues=dictation.phrases > 0)
        dictation.phrases += 1
        if actions:
            dictation.pieces.append(actions)

    def _request_undo(self) -> None:
        self._numbers += 1
        self._output.append(UndoRequest(self._numbers))
        self._flash(LightState.UNDO)

    def _request_eject(self) -> None:
        self._numbers += 1
        self._output.append(EjectRequest(self._numbers))
        log.info("eject requested (brings back an iPad's on-screen keyboard)")

    def _release_ready_output(self) -> None:
        """Hand the typist the next piece of text, key or erase, in order; one at a time."""
        while self._output and not self._typing_busy:
            item = self._output[0]
            if isinstance(item, Dictation):
                if item.cancelled:
                    self._output.popleft()
                    continue
                if item.pieces:
                    item.handed = True
                    self._hand_to_typist(item, item.pieces.popleft())
                    return
                if not item.finished:
                    return  # more phrases to come
                self._output.popleft()
                if item.handed:
                    self.counters.typed += 1  # all of it typed
                elif self._exit_when_idle and self._stopping is None:
                    self._stopping = "done"
                continue
            self._output.popleft()
            self._hand_to_typist(item, [])
            return

    def _hand_to_typist(self, item: OutputItem, actions: list[commands.Action]) -> None:
        self._typing_busy = True
        self._type_queue.put((item, actions))

    def _typist(self) -> None:
        while True:
            job = self._type_queue.get()
            if job is None:
                return
            item, actions = job
            error: VoxkeyError | None = None
            try:
                if isinstance(item, UndoRequest):
                    self._undo()
                elif isinstance(item, EraseRequest):
                    self._erase_cancelled(item.number)
                elif isinstance(item, EjectRequest):
                    self._eject()
                else:
                    self._perform(item.number, actions)
            except VoxkeyError as exc:
                error = exc
            except Exception as exc:  # a broken link must not kill the typist
                log.exception("typing failed")
                error = TransportError(f"typing failed: {exc}")
            self.events.put(OutputDone(item.number, error))

    def _perform(self, number: int, actions: list[commands.Action]) -> None:
        assert self.keyboard is not None and self._layout is not None
        record = self._typed if self._typed is not None and self._typed.number == number else None
        if record is None:
            record = TypedRecord(number, text_before=self._last_typed_text)
        for action in actions:
            if isinstance(action, commands.UndoLastDictation):
                self._undo()
            elif isinstance(action, commands.EraseDictation):
                self._erase(record)
            elif isinstance(action, commands.PressKey):
                self._press_key(action.name)
            else:
                text = prepare_text(action.text, self._layout, self.config.output.unsupported_characters)
                if self.config.dictation.space_between and not action.joins_previous:
                    text = self._with_separator(text)
                if text:
                    self._type_counted(text, record)
        self._typed = record

    def _with_separator(self, text: str) -> str:
        previous = self._last_typed_text
        if previous and not previous[-1].isspace() and text and not text[0].isspace():
            return " " + text
        return text

    def _host_after_pending_text(self) -> tuple[HostLink, float]:
        """The host link once the text before has reached it, and the deadline for what follows.

        Key commands and Eject are sent past ``Keyboard``, so they must not overtake its text.
        """
        assert self.keyboard is not None and self._host_link is not None
        self.keyboard.flush()
        deadline = time.monotonic() + self.config.output.host_wait_s
        self._host_link.wait_for_host(deadline)
        return self._host_link, deadline

    def _press_key(self, name: str) -> None:
        """A key command ("press enter"): pending text first, then the chord, outside undo's count."""
        assert self._layout is not None
        link, deadline = self._host_after_pending_text()
        for report in reports_for_strokes(commands.key_command_strokes(name, self._layout)):
            link.send(report, deadline)
        self._last_typed_text = ""

    def _type_counted(self, text: str, record: TypedRecord) -> None:
        """Type and count what this dictation delivered (earlier leftovers go first and are not counted)."""
        assert self.keyboard is not None
        leftovers = len(self.keyboard.pending_text)
        before = self.keyboard.delivered_chars
        try:
            self.keyboard.type(text)
        finally:
            delivered = self.keyboard.delivered_chars - before
            if leftovers and self._typed is not None:
                self._typed.delivered += min(leftovers, delivered)
            record.delivered += max(0, delivered - leftovers)
            if delivered:
                self._last_typed_text = text[: max(0, delivered - leftovers)] or self._last_typed_text

    def _eject(self) -> None:
        """The Eject media key, after the text before it has reached the host; outside undo's count."""
        link, deadline = self._host_after_pending_text()
        link.send_consumer(CONSUMER_EJECT, deadline)
        self.counters.ejected += 1
        log.info("eject sent over %s", link.active.name)

    def _undo(self) -> None:
        """Erase exactly what the last dictation typed: its undelivered rest is dropped, the rest backspaced."""
        record, self._typed = self._typed, None
        if record is None:
            log.info("undo: nothing to undo")
            return
        self._erase(record)
        self.counters.undone += 1

    def _erase_cancelled(self, number: int) -> None:
        """A dictation cancelled after some of it was typed: erase that, as undo would."""
        if self._typed is None or self._typed.number != number:
            return
        record, self._typed = self._typed, None
        self._erase(record)

    def _erase(self, record: TypedRecord) -> None:
        assert self.keyboard is not None
        dropped = self.keyboard.discard_pending()
        if dropped:
            log.info("dropped %d characters not yet typed", len(dropped))
        erased, record.delivered = record.delivered, 0
        if erased:
            self.keyboard.type("\b" * erased)
        self._last_typed_text = record.text_before
        log.info("erased %d characters of dictation %d", erased, record.number)

    # --- pairing --------------------------------------------------------------------------------

    def _start_pairing(self) -> None:
        if self._pairing_control is None:
            log.warning("long press: Bluetooth pairing needs output.transport bluetooth or both")
            self._show_error()
            return
        try:
            self._pairing_control.start_pairing()
        except VoxkeyError as exc:
            log.error("%s", exc)
            self._show_error()
            return
        self._pairing = True
        self.counters.pairing += 1
        log.info("Bluetooth pairing mode: pair from the host now; press the button to leave")

    def _end_pairing(self) -> None:
        self._pairing = False
        if self._pairing_control is not None:
            with contextlib.suppress(VoxkeyError):
                self._pairing_control.stop_pairing()
        log.info("pairing mode left")

    # --- stop and reload ------------------------------------------------------------------------

    def _begin_stop(self, reason: str) -> None:
        if self._stopping:
            return
        log.info("stopping (%s): finishing what is in flight", reason)
        self._stopping = reason
        self.notifier.stopping()
        if self._buttons is not None:
            self._buttons.close()
            self._buttons = None
        if self._recording is not None and not self._recording_ending:
            self._stop_recording(time.monotonic())
        if self._pairing:
            self._end_pairing()

    def _apply_reload(self) -> None:
        self._reload_requested = False
        source = self.config.source
        try:
            new = config_module.load(source) if source is not None else config_module.load()
        except ConfigError as exc:
            log.error("reload failed, keeping the running config: %s", exc)
            self._show_error()
            self.notifier.ready(self._status_text())
            return
        old, self.config = self.config, new
        if new.asr != old.asr and self._own_engine:
            log.info("reloading the speech model")
            engine, self._engine = self._engine, WhisperEngine(new.asr)
            if engine is not None:
                engine.close()
        if new.output != old.output or new.usb != old.usb or new.bluetooth != old.bluetooth:
            if self.keyboard is not None:
                self.keyboard.close()
            self._open_output()
        if new.leds != old.leds and self.light is not None:
            self.light.close()
            self.light = StatusLight(new.leds)
        if new.button != old.button and self._buttons is not None:
            self._buttons.close()
            self._buttons = self._buttons_factory(self)
        if new.dictation.keep_microphone_open != old.dictation.keep_microphone_open or new.audio != old.audio:
            if self._source is not None:
                self._source.close()
                self._source = None
            if new.dictation.keep_microphone_open:
                self._check_microphone()
        log.info("config reloaded from %s", source or config_module.default_path())
        self.notifier.ready(self._status_text())

    # --- light and status -----------------------------------------------------------------------

    def _display_state(self) -> LightState:
        if self._recording is not None and not self._recording_ending:
            return LightState.LISTENING
        if self._pairing and self._pairing_control is not None and not self._pairing_control.pairing:
            self._pairing = False  # BlueZ ended it: a host bonded, or the pairing timeout passed
            log.info("pairing mode ended")
        if self._pairing:
            return LightState.PAIRING
        if self._waiting_for_host:
            return LightState.WAITING_FOR_HOST
        if self._typing_busy:
            return LightState.TYPING
        if (
            self._recording is not None
            or self._transcribing
            or any(isinstance(i, Dictation) and not i.cancelled for i in self._output)
        ):
            return LightState.TRANSCRIBING
        if time.monotonic() < self._error_until:
            return LightState.ERROR
        return LightState.IDLE

    def _refresh_light(self) -> None:
        state = self._display_state()
        if self.light is not None:
            self.light.show(state)
        self.notifier.status(self._status_text(state))

    def _status_text(self, state: LightState | None = None) -> str:
        state = state or self._display_state()
        c = self.counters
        return f"{state.value}; {c.dictations} dictations, {c.typed} typed, {c.cancelled} cancelled, {c.undone} undone"

    def _flash(self, state: LightState) -> None:
        if self.light is not None:
            self.light.flash(state)

    def _show_error(self) -> None:
        self._error_until = time.monotonic() + ERROR_SHOW_S

    def _finish_terminal_line(self) -> None:
        """Text printed by the terminal transport ends with a newline, so the shell prompt starts clean."""
        if self._last_typed_text and self._uses_terminal():
            stream = self.options.stream or sys.stdout
            with contextlib.suppress(OSError, ValueError):
                stream.write("\n")
                stream.flush()

    def _uses_terminal(self) -> bool:
        return (self.options.output or self.config.output.transport) == "terminal"


# --- building the parts from the config ----------------------------------------------------------


def build_links(config: Config, stream: TextIO | None = None) -> list[ReportLink]:
    """The keyboard links ``output.transport`` asks for, in order of preference."""
    output = config.output
    transport = output.transport
    if transport == "terminal":
        return [TerminalLink(Layout.load(output.layout), stream)]
    if transport == "uinput":
        from voxkey.transports.uinput import UinputLink

        return [UinputLink()]
    links: dict[str, Callable[[], ReportLink]] = {
        "usb": lambda: UsbHidLink.for_gadget(config.usb.device, config.usb.udc),
        "bluetooth": lambda: _bluetooth_link(config),
    }
    if transport in links:
        return [links[transport]()]
    order = [output.prefer, "bluetooth" if output.prefer == "usb" else "usb"]
    return [links[name]() for name in order]


def _bluetooth_link(config: Config) -> ReportLink:
    from voxkey.transports.bluetooth import open_bluetooth_link

    return open_bluetooth_link(config.bluetooth)


def default_buttons(daemon: Daemon) -> Buttons | None:
    """GPIO buttons on a Pi, terminal keys on a PC, none when a WAV file plays the whole part."""
    if daemon.options.audio_file is not None:
        return None
    settings = daemon.config.button
    if settings.source == "terminal":
        if not os.isatty(sys.stdin.fileno()):
            raise VoxkeyError("button.source is terminal but standard input is not a terminal; use --audio-file")
        print(TerminalButtons.hint(settings), file=sys.stderr)
        return TerminalButtons(settings, daemon.events.put, lambda: daemon.request_stop("q pressed"))
    return GpioButtons(settings, daemon.events.put)


def install_signal_handlers(daemon: Daemon) -> Callable[[], None]:
    """SIGTERM/SIGINT stop gracefully, SIGHUP reloads; returns a function that restores the old handlers."""

    def on_stop(signum: int, frame: FrameType | None) -> None:
        daemon.request_stop(signal.Signals(signum).name)

    def on_hup(signum: int, frame: FrameType | None) -> None:
        daemon.request_reload()

    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, on_stop),
        signal.SIGINT: signal.signal(signal.SIGINT, on_stop),
        signal.SIGHUP: signal.signal(signal.SIGHUP, on_hup),
    }

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore


def run(config: Config, options: RunOptions, pairing: PairingControl | None = None) -> int:
    """``voxkey run``: the daemon with signal handling."""
    daemon = Daemon(
        config,
        options,
        link_factory=lambda c: build_links(c, options.stream),
        pairing=pairing,
    )
    restore = install_signal_handlers(daemon)
    try:
        return daemon.run()
    finally:
        restore()


__all__ = [
    "Counters",
    "Daemon",
    "Dictation",
    "HostLink",
    "RunOptions",
    "build_links",
    "run",
]
