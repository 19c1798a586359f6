"""The USB HID gadget link: reports go to ``/dev/hidg0``, the host reads them as a keyboard.

How ``f_hid`` behaves decides the design. A ``write()`` only queues a report;
the next write waits until the host has polled the previous one (``POLLOUT``
means "previous report completed"). When the host goes away, the endpoint is
disabled: a queued report is cancelled, and the next write fails with
``ESHUTDOWN``. Whether the report before a failure reached the host decides
between a lost and a doubled character, and ``f_hid`` tells user space only
through the kernel log: a cancelled report is logged as "End Point Request
ERROR", a delivered one is not. So the link reads ``/dev/kmsg`` (root or
CAP_SYSLOG) and attributes every such line to its own last report; the
``Keyboard`` then counts a character whose press arrived as typed and types
one whose press was cancelled again. Without the kernel log the link falls back
to what ``f_hid`` makes likely: a completion seen before the failure was a
delivery (``f_hid`` holds ``POLLOUT`` back once the endpoint is disabled), a
link lost while waiting for the completion was a cancellation.

The host is "there" when the UDC says ``configured``; while it is
``suspended`` (asleep) or unplugged, text waits. A host that simply stops
polling is away too: a laptop put to sleep mid-text, whose UDC may still read
``configured`` (Debian's dummy_hcd never shows ``suspended``; the kernel case
``usb.host_suspends``). When such a host polls again after more than
``STALL_S``, the link lets go of any key the host got on waking and reports the
host as gone since it stopped (``LinkDown.away_s``), before the next key: the
daemon's kept-text rule then decides whether the rest is typed by itself or
waits for a tap, as for an unplug (the laptop may wake to its lock screen). After the host comes back
(re-plugged, re-enumerated) it ignores the first reports: Linux's usbhid drops
input for 50 ms after it opens a keyboard, and other hosts settle too. So the
link first sends all-keys-up reports, which are harmless to lose, until the host
has been polling for ``settle_s``; only then does text resume.

A new link does not know what the writer before it left held: a ``voxkey``
killed mid-text (SIGKILL, an OOM kill, a crash) can leave a key pressed, and
the host auto-repeats it until the next report says otherwise. So a link
releases every key as it starts (when a host is there; else as it first
reaches one), before any text: typing the same key as the stuck one would
otherwise merge with it and lose a character.

A machine without a USB device controller, or without the gadget's device
node, is different: no host coming back can fix that. So a one-shot command
asks ``require_gadget`` first and fails at once with what to set up, instead
of waiting for a host that cannot come.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import time
from collections.abc import Callable
from pathlib import Path

from voxkey.errors import GadgetError, HostUnavailableError, TransportError
from voxkey.hid import RELEASE_ALL
from voxkey.transports.base import LinkDown

log = logging.getLogger(__name__)

UDC_CLASS = Path("/sys/class/udc")
KERNEL_LOG = Path("/dev/kmsg")
REPORT_CANCELLED = b"End Point Request ERROR"  # f_hid's completion handler, for any status but success
CANCEL_LOG_GRACE_S = 0.1
LINK_DOWN_ERRNOS = {errno.ESHUTDOWN, errno.EPIPE, errno.ENODEV, errno.EIO, errno.ECONNRESET, errno.ENXIO}
POLL_SLICE_S = 0.1
STALL_S = 1.0
"""A host that did not poll a queued report for this long was away (asleep, its driver unbound): hosts poll a
keyboard every 1-10 ms, and even a loaded one within a few hundred."""
SETTLE_S = 0.5
SET_UP_GADGET = (
    "on a Raspberry Pi add dtoverlay=dwc2,dr_mode=peripheral to /boot/firmware/config.txt and reboot, "
    "then run 'sudo voxkey-gadget up' (see hardware/usb-gadget.md)"
)


class KernelLog:
    """``/dev/kmsg`` from the moment it was opened, read for one fact: did f_hid cancel a report?"""

    def __init__(self, path: Path = KERNEL_LOG) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with contextlib.suppress(OSError):  # a pipe in tests cannot seek; /dev/kmsg starts at the end
            os.lseek(self._fd, 0, os.SEEK_END)

    @classmethod
    def open(cls, path: Path = KERNEL_LOG) -> KernelLog | None:
        try:
            return cls(path)
        except OSError as exc:
            log.warning(
                "usb: cannot read the kernel log %s (%s): after an unplug the character in flight is judged "
                "from timing, which can rarely double or drop it; run voxkey with CAP_SYSLOG",
                path,
                exc.strerror,
            )
            return None

    def report_cancelled(self, grace_s: float = 0.0) -> bool:
        """Whether a cancellation was logged since the last call; waits up to ``grace_s`` for one."""
        cancelled = self._drain()
        deadline = time.monotonic() + grace_s
        while not cancelled and (remaining := deadline - time.monotonic()) > 0:
            select.select([self._fd], [], [], remaining)
            cancelled = self._drain()
        return cancelled

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _drain(self) -> bool:
        cancelled = False
        while True:
            try:
                record = os.read(self._fd, 8192)
            except BlockingIOError:
                return cancelled
            except BrokenPipeError:  # records overwritten before we read them; the next read goes on
                continue
            if not record:
                return cancelled
            cancelled |= REPORT_CANCELLED in record


def find_udc_state_file(udc: str | None = None, udc_class: Path = UDC_CLASS) -> Path | None:
    """The sysfs state file of ``udc``, or of the only UDC there is; None if there is none."""
    if udc:
        return udc_class / udc / "state"
    controllers = sorted(udc_class.glob("*")) if udc_class.is_dir() else []
    return controllers[0] / "state" if controllers else None


def require_gadget(device: Path, udc: str | None = None, udc_class: Path = UDC_CLASS) -> Path:
    """The state file of the UDC a keyboard gadget can type through; GadgetError naming what is missing.

    Waiting is right for a host that is away, wrong for a machine that has no
    USB device controller (the overlay is off, or it is a PC) or no gadget
    device node (``voxkey-gadget up`` never ran, or ``--device`` is mistyped):
    f_hid's node exists only while a gadget is bound to a UDC, and nothing
    creates either while voxkey waits.
    """
    controllers = sorted(entry.name for entry in udc_class.iterdir()) if udc_class.is_dir() else []
    if udc is not None and udc not in controllers:
        available = ", ".join(controllers) or "none"
        raise GadgetError(
            f"no USB device controller named {udc!r} in {udc_class} (available: {available}); fix --udc or usb.udc"
        )
    if not controllers:
        missing = f", so there is no keyboard gadget ({device} does not exist)" if not device.exists() else ""
        raise GadgetError(f"no USB device controller (UDC) in {udc_class}{missing}; {SET_UP_GADGET}")
    if not device.exists():
        raise GadgetError(
            f"no keyboard gadget device {device}: run 'sudo voxkey-gadget up' (it prints the device node) "
            "and pass that node with --device or set usb.device"
        )
    return udc_class / (udc or controllers[0]) / "state"


class UsbHidLink:
    """Writes boot keyboard reports to an ``f_hid`` device node."""

    name = "usb"

    def __init__(
        self,
        device: str | Path = "/dev/hidg0",
        udc_state_file: Path | None = None,
        settle_s: float = SETTLE_S,
        kernel_log: KernelLog | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``udc_state_file`` None means "do not gate on the UDC" (a plain file or pipe in tests)."""
        self.device = Path(device)
        self.clock = clock
        self._stalled_s = 0.0
        """How long the host left the last report unread, if longer than ``STALL_S`` (0 once acted on)."""
        self.udc_state_file = udc_state_file
        self.settle_s = settle_s
        self.kernel_log = kernel_log
        self._needs_settle = False
        self._fd: int | None = None
        self._leds = 0
        self._last_report: bytes | None = None
        """The last report the host got from us; None: unknown, a writer before us may have left a key held."""
        self._waiting_logged = False
        self.enumerations = 0
        """How often this link saw the host lose the gadget (UDC out of configured/suspended, or a reset)."""
        self._attached = False
        self.release_all()  # see the module doc: a killed writer before us may have left a key down

    @classmethod
    def for_gadget(
        cls,
        device: str | Path = "/dev/hidg0",
        udc: str | None = None,
        *,
        require: bool = False,
        udc_class: Path | None = None,
    ) -> UsbHidLink:
        """The link to a gadget's device, gated on its UDC's state.

        ``require`` fails at once when the controller or the device node is
        missing (see ``require_gadget``): for a one-shot command. The daemon
        does not require them: with ``transport: both`` Bluetooth must work
        without a USB gadget, and the gadget may be re-created while it runs;
        it waits and logs what it waits for.
        """
        udc_class = udc_class or UDC_CLASS
        if require:
            state_file: Path | None = require_gadget(Path(device), udc, udc_class)
        else:
            state_file = find_udc_state_file(udc, udc_class)
        return cls(device, state_file, kernel_log=KernelLog.open())

    def udc_state(self) -> str:
        if self.udc_state_file is None:
            return "configured"
        try:
            state = self.udc_state_file.read_text().strip()
        except OSError:
            state = "no UDC"
        self._observe(state in ("configured", "suspended"))
        return state

    def host_id(self) -> str | None:
        """Which enumeration of the gadget the host is: kept text waits for a tap after a re-enumeration.

        A USB device cannot see which computer it is plugged into; what it sees is the UDC leaving
        ``configured``/``suspended`` (``not attached``, ``default``, ``addressed``: unplugged, plugged into
        another host, or reset) and f_hid cancelling a report when the host resets the link. Each time
        counts as a new host. ``suspended`` (the host asleep) keeps the enumeration: the time rule decides.
        """
        return str(self.enumerations) if self.udc_state() == "configured" else None

    def _observe(self, attached: bool) -> None:
        if self._attached and not attached:
            self.enumerations += 1
        self._attached = attached

    def wait_for_host(self, deadline: float | None) -> None:
        while True:
            state = self.udc_state()
            opened = state == "configured" and self._open()
            if opened and self._settled(deadline):
                if self._last_report is None:  # the host was away when the link started
                    self.send(RELEASE_ALL, deadline)
                if self._waiting_logged:
                    log.info("usb: host is back, typing resumes")
                self._waiting_logged = False
                return
            why = f"UDC state: {state}" if state != "configured" or opened else f"{self.device} does not exist"
            if not self._waiting_logged:
                log.warning("usb: waiting for the host (%s, device %s)", why, self.device)
                self._waiting_logged = True
            self._sleep_or_give_up(deadline, f"USB host not ready ({why})")

    def send(self, report: bytes, deadline: float | None) -> None:
        fd = self._require_fd()
        self._wait_writable(fd, deadline)
        if self._stalled_s and report != RELEASE_ALL:
            self._back_from_sleep(fd)
        if self.kernel_log is not None and self.kernel_log.report_cancelled():
            # The previous report completed as a cancellation while the UDC looked configured:
            # the host re-enumerated between two of our looks at it.
            self._drop_fd()
            self._needs_settle = True
            self._observe(False)  # re-enumerated between two looks at the UDC
            raise LinkDown("the host reset the link: the last report was cancelled", previous_delivered=False)
        try:
            os.write(fd, report)
        except OSError as exc:
            if exc.errno in LINK_DOWN_ERRNOS:
                raise self._link_lost(f"write to {self.device}: {os.strerror(exc.errno)}", True) from exc
            raise TransportError(f"cannot write to {self.device}: {exc.strerror}") from exc
        self._last_report = report

    def led_state(self) -> int:
        if self._fd is not None:
            self._read_led_reports(self._fd)
        return self._leds

    def release_all(self) -> None:
        """Best effort, never raises: all keys up, if a host is there and the last report held any (or is unknown)."""
        if self._last_report == RELEASE_ALL:
            return
        try:
            if self._fd is None and not (self.udc_state() == "configured" and self._open()):
                return
        except TransportError as exc:
            log.debug("usb: cannot release keys (%s)", exc)
            return
        assert self._fd is not None
        try:
            select.select([], [self._fd], [], 0.2)
            os.write(self._fd, RELEASE_ALL)
            self._last_report = RELEASE_ALL
        except OSError as exc:
            log.debug("usb: release on close failed (%s); the host releases keys of a vanished device", exc)

    def close(self) -> None:
        self._drop_fd()
        if self.kernel_log is not None:
            self.kernel_log.close()
            self.kernel_log = None

    def _link_lost(self, why: str, completion_seen: bool) -> LinkDown:
        """Close the device and judge the previous report (see module doc): the kernel log first, else timing."""
        self._drop_fd()
        self._needs_settle = True
        self._observe(False)  # f_hid disabled the endpoint: the host let go of the gadget
        if self.kernel_log is not None:
            delivered = not self.kernel_log.report_cancelled(CANCEL_LOG_GRACE_S)
        else:
            delivered = completion_seen
        log.info("usb: link lost (%s); the report before it was %s", why, "delivered" if delivered else "cancelled")
        return LinkDown(why, previous_delivered=delivered)

    def _open(self) -> bool:
        if self._fd is not None:
            return True
        try:
            self._fd = os.open(self.device, os.O_RDWR | os.O_NONBLOCK)
        except FileNotFoundError:
            return False
        except PermissionError as exc:
            raise TransportError(
                f"no permission to open {self.device}; run voxkey as a member of the group that owns it "
                "(the installer's udev rule gives it to group 'voxkey')"
            ) from exc
        return True

    def _settled(self, deadline: float | None) -> bool:
        """After the host came back: keys-up reports until it has polled for ``settle_s`` (see module doc)."""
        if not self._needs_settle:
            return True
        fd = self._require_fd()
        polling_since: float | None = None
        try:
            while polling_since is None or time.monotonic() - polling_since < self.settle_s:
                self._wait_writable(fd, deadline)
                os.write(fd, RELEASE_ALL)
                self._wait_writable(fd, deadline)
                polling_since = polling_since or time.monotonic()
        except OSError as exc:
            if exc.errno not in LINK_DOWN_ERRNOS:
                raise TransportError(f"cannot write to {self.device}: {exc.strerror}") from exc
            self._drop_fd()
            return False
        self._needs_settle = False
        self._last_report = RELEASE_ALL
        if self.kernel_log is not None:
            self.kernel_log.report_cancelled()  # keys-up reports cancelled while settling are nobody's loss
        return True

    def _require_fd(self) -> int:
        if self._fd is None:
            raise LinkDown(f"{self.device} is not open")
        return self._fd

    def _drop_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _back_from_sleep(self, fd: int) -> None:
        """The host polled again after a stall: let go of every key it may hold, then say it was away.

        The report queued when it stopped reached it only on waking; if that was a press, the key is
        down on a host that may be showing its lock screen now. Keys-up goes first; the next key waits
        for the kept-text rule.
        """
        away_s, self._stalled_s = self._stalled_s, 0.0
        if self._last_report != RELEASE_ALL:
            try:
                os.write(fd, RELEASE_ALL)
            except OSError as exc:
                raise self._link_lost(f"write to {self.device}: {os.strerror(exc.errno or 0)}", True) from exc
            self._last_report = RELEASE_ALL
        log.warning("usb: the host did not read reports for %.1f s (asleep?); the rest of the text is kept", away_s)
        raise LinkDown(f"the host did not read reports for {away_s:.1f} s", previous_delivered=True, away_s=away_s)

    def _wait_writable(self, fd: int, deadline: float | None) -> None:
        """Wait until the previous report completed: the host polled it, or it was cancelled.

        A host that re-enumerates (unplug, replug, reset) takes the UDC out of
        ``configured`` and f_hid cancels the queued report without telling the
        writer, so any state but ``configured`` or ``suspended`` is a link drop.
        """
        poller = select.poll()
        poller.register(fd, select.POLLOUT | select.POLLERR)
        waiting_since = self.clock()
        while not poller.poll(POLL_SLICE_S * 1000):
            self._read_led_reports(fd)
            state = self._state_or_link_down(completion_seen=False)
            if state != "configured" and not self._waiting_logged:
                log.warning("usb: host stopped reading reports (UDC state: %s); text is kept", state)
                self._waiting_logged = True
            self._check_deadline(deadline, f"USB host stopped reading reports (UDC state: {state})")
        stalled_s = self.clock() - waiting_since
        if stalled_s > STALL_S:
            self._stalled_s = max(self._stalled_s, stalled_s)
        self._read_led_reports(fd)
        self._state_or_link_down(completion_seen=True)

    def _state_or_link_down(self, completion_seen: bool) -> str:
        state = self.udc_state()
        if state not in ("configured", "suspended"):
            raise self._link_lost(f"UDC state is {state!r}: the host re-enumerates or is gone", completion_seen)
        return state

    def _read_led_reports(self, fd: int) -> None:
        """Drain LED output reports; the newest one is the host's lock-key state."""
        while True:
            try:
                data = os.read(fd, 8)
            except BlockingIOError:
                return
            except OSError as exc:
                log.debug("usb: LED read failed: %s", exc)
                return
            if not data:
                return
            self._leds = data[0]

    def _sleep_or_give_up(self, deadline: float | None, why: str) -> None:
        self._check_deadline(deadline, why)
        time.sleep(POLL_SLICE_S)

    @staticmethod
    def _check_deadline(deadline: float | None, why: str) -> None:
        if deadline is not None and time.monotonic() >= deadline:
            raise HostUnavailableError(why)
