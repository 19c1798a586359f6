"""The dictation daemon: the loop that hears every event and decides, in the order things happened.

Threads, and what each owns:

* the **main loop** (``Daemon.run``) owns the state here. Everything else talks
  to it only by putting events on one queue: button edges (gpiozero's or the
  terminal's thread), "recording ended", "transcribed", "typed", signals. The
  gesture rules (``voxkey.gestures``) turn edges into intents, the loop carries
  them out; what goes to the host waits its turn in ``voxkey.ordering``;
* one **capture thread per recording** (``voxkey.capture``) feeds the audio into
  the ``DictationSession``, which transcribes finished phrases in its own worker
  while the user is still talking;
* one **transcriber thread** finishes sessions in order; the whisper model is
  loaded once, at start-up, before READY=1;
* one **typist thread** (``voxkey.typist``) types, one job at a time, and keeps
  what undo erases. With ``dictation.type_while_talking`` each phrase goes out
  as soon as it is transcribed. Nothing waits for the cancel window: a cancel
  erases what the dictation typed.

The LED shows ``voxkey.status``'s reading of this state. SIGTERM stops
listening, finishes transcribing and typing what was said, then exits; SIGHUP
re-reads the config file and applies it when nothing is in flight.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from voxkey import config as config_module
from voxkey.asr import PhraseTranscriber
from voxkey.audio import AudioSource, open_audio_source
from voxkey.capture import Recorder, RecordingEnded, SilenceReached
from voxkey.clock import MONOTONIC, Clock
from voxkey.config import Config
from voxkey.display import StatusDisplay
from voxkey.errors import AudioError, ConfigError
from voxkey.gestures import Act, Cancel, GestureInterpreter, Intent, Situation, Start, Stop
from voxkey.host_session import HostSession
from voxkey.memory import limit_heap_growth
from voxkey.notify import SystemdNotifier
from voxkey.passkey import PasskeyWanted, PasskeyWithdrawn
from voxkey.pipeline import Feedback, PhraseReady, Pipeline, Transcribed
from voxkey.reload import ReloadPlan
from voxkey.remote.engine import RemoteEngine, build_engine
from voxkey.status import Counters, Snapshot, light_state
from voxkey.transports.base import Keyboard
from voxkey.transports.host import Links, PairingEnded
from voxkey.typist import HostWaiting, OutputDone, TextHeld, Typist
from voxkey.ui import ButtonEdge, Buttons, LightState, StatusLight, open_buttons

log = logging.getLogger(__name__)

TICK_S = 0.5
"""Longest sleep of the main loop: bounds watchdog pings and timer lateness."""


@dataclass(frozen=True)
class StopRequested:
    reason: str


@dataclass(frozen=True)
class Reload:
    pass


Event = (
    ButtonEdge
    | RecordingEnded
    | SilenceReached
    | Transcribed
    | PhraseReady
    | OutputDone
    | HostWaiting
    | TextHeld
    | PairingEnded
    | PasskeyWanted
    | PasskeyWithdrawn
    | StopRequested
    | Reload
)
"""Everything the main loop reacts to."""

AudioFactory = Callable[[], AudioSource]
ButtonsFactory = Callable[["Daemon"], Buttons | None]
LinkFactory = Callable[[Config], Links]


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


class Daemon:
    """Owns the dictation cycle; build with ``Daemon(config, link_factory=...)`` and call ``run()``.

    ``link_factory`` opens the keyboard links for a config (``voxkey.wiring.build_links`` in ``voxkey run``);
    it is called again when a reload changes the output settings.
    """

    def __init__(
        self,
        config: Config,
        options: RunOptions | None = None,
        *,
        link_factory: LinkFactory,
        audio_factory: AudioFactory | None = None,
        buttons_factory: ButtonsFactory | None = None,
        notifier: SystemdNotifier | None = None,
        engine: PhraseTranscriber | None = None,
        clock: Clock = MONOTONIC,
    ) -> None:
        self.config = config
        self.options = options or RunOptions()
        exit_when_idle = self.options.exit_when_idle
        self._exit_when_idle = self.options.audio_file is not None if exit_when_idle is None else exit_when_idle
        self.counters = Counters()
        self.notifier = notifier or SystemdNotifier()
        self.clock = clock
        # SimpleQueue: put() is reentrant, so signal handlers may use it while the loop is inside get().
        self.events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self.ready = threading.Event()
        self.stopped = threading.Event()
        self._link_factory = link_factory
        self._buttons_factory = buttons_factory or _default_buttons
        self._engine = engine
        self._own_engine = engine is None
        self.gestures = GestureInterpreter(config.button, clock, config.audio.min_recording_ms / 1000)
        self.typist = Typist(config, self.events.put, clock, lambda held: self.events.put(TextHeld(held)))
        recorder = Recorder(config, audio_factory or self._open_audio, self.events.put)
        self.display = StatusDisplay(self.notifier, clock, self.counters)
        self.hosts = HostSession(self.events.put, self.typist.kept, self.display, self.counters)
        feedback = Feedback(flash=self.display.flash, show_error=self.display.show_error)
        self.pipeline = Pipeline(config, recorder, self.typist, self.counters, self.events.put, feedback)
        self.pipeline.on_code = self.hosts.code_heard
        self._buttons: Buttons | None = None
        self._stopping: str | None = None
        self._reload_requested = False
        self._next_watchdog: float | None = None

    @property
    def keyboard(self) -> Keyboard | None:
        return self.typist.keyboard

    @property
    def light(self) -> StatusLight | None:
        return self.display.light

    # --- start-up and shutdown ------------------------------------------------------------------

    def start(self) -> None:
        """Load the model and open every part; READY=1 once dictation can really start."""
        self.notifier.status("loading the speech model")
        self.display.open(self.config.leds, LightState.TRANSCRIBING)
        limit_heap_growth()  # before whisper and the threads allocate: see voxkey.memory
        if self._engine is None:
            self._engine = build_engine(self.config.asr)
            self._engine.warm_up()
        self._open_output()
        self.pipeline.start(self._engine)
        self._buttons = self._buttons_factory(self)
        self._check_microphone()
        self.display.show(LightState.IDLE)
        self.notifier.ready(self.display.text(LightState.IDLE))
        self.ready.set()
        engine, link, mode = self._engine.name, self.typist.link_name, self.config.button.mode
        log.info("ready: %s model, %s transport, %s mode", engine, link, mode)
        if self.options.audio_file is not None:
            self.events.put(ButtonEdge("press", self.clock.now()))

    def _open_output(self) -> None:
        config = self.config
        if self.options.output is not None:
            output = dataclasses.replace(config.output, transport=self.options.output)  # type: ignore[arg-type]
            config = dataclasses.replace(config, output=output)
        links = self._link_factory(config)
        self.hosts.use(links)
        self.typist.open(links.links, lambda waiting: self.events.put(HostWaiting(waiting)))

    def _open_audio(self) -> AudioSource:
        return open_audio_source(self.config.audio, self.options.audio_file)  # the config of now: reload may change it

    def _check_microphone(self) -> None:
        """Open the audio source once at start so a missing mic shows at boot, not at the first press."""
        if self.options.audio_file is None:
            try:
                self.pipeline.recorder.check()
            except AudioError as exc:
                log.error("%s", exc)
                self.display.show_error()

    def request_stop(self, reason: str = "stop requested") -> None:
        self.events.put(StopRequested(reason))

    def request_reload(self) -> None:
        self.events.put(Reload())

    def close(self) -> None:
        """Release everything; safe to call twice."""
        if self._buttons is not None:
            self._buttons.close()
            self._buttons = None
        self.pipeline.close()
        self.hosts.close()
        self.typist.close_output()
        if self._engine is not None and self._own_engine:
            self._engine.close()
        self._engine = None
        self.display.close()
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
        return 1 if self._stopping == "error" else 0

    def _loop(self) -> None:
        while True:
            self._next_watchdog = self.notifier.keep_alive(self.clock.now())
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
            self._carry_out(self.gestures.due())
            self.pipeline.release_ready_output()
            if self._exit_when_idle and self.pipeline.something_out and self._stopping is None:
                self._stopping = "done"
            self._refresh_light()

    def _idle(self) -> bool:
        return self.pipeline.idle() and self.gestures.undo_due_at is None and self.gestures.kept_due_at is None

    def _next_wakeup(self) -> float:
        now = self.clock.now()
        wake = now + TICK_S
        for due_at in (self.gestures.undo_due_at, self.gestures.kept_due_at):
            if due_at is not None:
                wake = min(wake, due_at)
        if self.display.error_until > now:
            wake = min(wake, self.display.error_until)
        if self._next_watchdog is not None:
            wake = min(wake, self._next_watchdog)
        return max(0.0, wake - now)

    def _handle(self, event: Event) -> None:
        match event:
            case ButtonEdge():
                self._carry_out(self.gestures.edge(event, self._situation()))
            case RecordingEnded():
                if self.pipeline.recording_ended(event, self.clock.now()):
                    self.gestures.recording_ended_by_itself()
            case SilenceReached(number=number):
                self.pipeline.silence(number, self.clock.now())
            case Transcribed():
                self.pipeline.transcribed(event)
            case PhraseReady():
                self.pipeline.phrase_ready(event)
            case OutputDone():
                self.pipeline.output_done(event)
            case HostWaiting() | TextHeld() | PairingEnded() | PasskeyWanted() | PasskeyWithdrawn():
                self.hosts.handle(event)
            case StopRequested(reason=reason):
                self._begin_stop(reason)
            case Reload():
                log.info("reload requested; applying when nothing is in flight")
                self.notifier.reloading()
                self._reload_requested = True

    # --- gestures: the interpreter's intents, carried out ---------------------------------------

    def _situation(self) -> Situation:
        return dataclasses.replace(
            self.pipeline.situation(),
            pairing=self.hosts.pairing_gesture,
            stopping=self._stopping is not None,
            text_held=self.hosts.text_held,
        )

    def _carry_out(self, intents: list[Intent]) -> None:
        for intent in intents:
            match intent:
                case Start(at=at):
                    self.pipeline.start_recording(at, code_for=self.hosts.passkey.pending)
                case Stop(at=at):
                    self.pipeline.stop_recording(at)
                case Act.ABORT:
                    self.pipeline.abort_recording()
                case Cancel(why=why) if self.hosts.text_held:
                    self.hosts.drop_kept(why)
                case Cancel(why=why, eject_if_nothing=eject_if_nothing):
                    if not self.pipeline.cancel_latest(why) and eject_if_nothing:
                        self.pipeline.request_eject()
                case Act.CANCEL_STOPPED:
                    self.pipeline.cancel_stopped()
                case Act.UNDO:
                    self.pipeline.request_undo()
                case Act.EJECT:
                    self.pipeline.request_eject()
                case Act.PAIR:
                    self.hosts.start_pairing()
                case Act.END_PAIRING:
                    self.hosts.pairing.stop()
                case Act.TYPE_KEPT:
                    self.hosts.type_kept()
                case Act.DROP_KEPT:
                    self.hosts.drop_kept("double press")

    # --- stop and reload ------------------------------------------------------------------------

    def _begin_stop(self, reason: str) -> None:
        if self._stopping:
            return
        log.info("stopping (%s): finishing what is in flight", reason)
        self._stopping = reason
        self.hosts.stop()  # kept text is logged, not waited for (systemd's stop timeout); pairing mode ends
        self.notifier.stopping()
        if self._buttons is not None:
            self._buttons.close()
            self._buttons = None
        if self.pipeline.listening():
            self.pipeline.stop_recording(self.clock.now())

    def _apply_reload(self) -> None:
        self._reload_requested = False
        source = self.config.source
        try:
            new = config_module.load(source) if source is not None else config_module.load()
        except ConfigError as exc:
            log.error("reload failed, keeping the running config: %s", exc)
            self.display.show_error()
            self.notifier.ready(self.display.text(self._display_state()))
            return
        plan = ReloadPlan.between(self.config, new)
        self.config = self.typist.config = self.pipeline.config = self.pipeline.recorder.config = new
        self.gestures.settings, self.gestures.min_recording_s = new.button, new.audio.min_recording_ms / 1000
        if plan.engine and self._own_engine:
            log.info("reloading the speech model")
            engine, self._engine = self._engine, build_engine(new.asr)
            self.pipeline.engine = self._engine
            if engine is not None:
                engine.close()
        if plan.output:
            self.typist.close_output()
            self._open_output()
        if plan.light and self.display.light is not None:
            self.display.open(new.leds, self._display_state())
        if plan.buttons and self._buttons is not None:
            self._buttons.close()
            self._buttons = self._buttons_factory(self)
        if plan.microphone:
            self.pipeline.recorder.close()
            if new.dictation.keep_microphone_open:
                self._check_microphone()
        log.info("config reloaded from %s", source or config_module.default_path())
        self.notifier.ready(self.display.text(self._display_state()))

    # --- light and status -----------------------------------------------------------------------

    def _display_state(self) -> LightState:
        snapshot = Snapshot(
            listening=self.pipeline.listening(),
            pairing=self.hosts.pairing.active,
            passkey_wanted=self.hosts.passkey.waiting,
            waiting_for_host=self.hosts.waiting_for_host,
            text_held=self.hosts.text_held,
            typing=self.pipeline.typing,
            in_flight=self.pipeline.in_flight(),
            speech_server_down=isinstance(self._engine, RemoteEngine) and not self._engine.health.up,
            error_until=self.display.error_until,
            now=self.clock.now(),
        )
        return light_state(snapshot)

    def _refresh_light(self) -> None:
        self.display.show(self._display_state())


def _default_buttons(daemon: Daemon) -> Buttons | None:
    """GPIO buttons on a Pi, terminal keys on a PC, none when a WAV file plays the whole part."""
    if daemon.options.audio_file is not None:
        return None
    return open_buttons(daemon.config.button, daemon.events.put, lambda: daemon.request_stop("q pressed"))


__all__ = ["Daemon", "RunOptions"]
