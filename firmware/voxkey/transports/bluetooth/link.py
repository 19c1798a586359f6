"""The Bluetooth ``ReportLink``: key reports as GATT notifications, paced by what the host acknowledged.

Pacing and exactness. A report is *written* when we hand it to BlueZ and
*delivered* when the host's controller acknowledged the packet that carried it
(``delivery.py`` reads that from the HCI monitor). At most ``report_window``
reports are written but not yet delivered, so BlueZ's and the kernel's queues
never fill with text that a dropped link would throw away, and several reports
can still share one connection event.

When the host disconnects, the written-but-undelivered reports are exactly the
ones it never got. Unlike USB (where only the report in flight is uncertain),
that can be several characters, more than ``Keyboard``'s one-character rewind
covers, so this link keeps them and writes them again, in order, as soon as a
bonded host is back, before anything new. ``send`` therefore never raises
``LinkDown``: while no host is there it waits (``HostUnavailableError`` at the
deadline, with ``Keyboard`` keeping its place). A replayed list may start with a
key release whose press was delivered; hosts release every key of a keyboard
that disconnects, so that release is a no-op and the text stays exact.

The only uncertain packet is one whose acknowledgement was itself lost as the
link died: it is replayed, so that key can at worst appear twice; nothing is
ever lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from voxkey.errors import HostUnavailableError, TransportError
from voxkey.hid import RELEASE_ALL
from voxkey.kept import KeptText, Resume
from voxkey.transports.bluetooth.delivery import DeliveryLedger, HciMonitor
from voxkey.transports.bluetooth.devices import DeviceView
from voxkey.transports.bluetooth.gatt import CONSUMER_RELEASE, consumer_report
from voxkey.transports.bluetooth.hostcompat import unheard_notifications
from voxkey.transports.bluetooth.peripheral import BluetoothPeripheral
from voxkey.transports.bluetooth.settings import BluetoothSettings

log = logging.getLogger(__name__)

WAIT_SLICE_S = 0.5
CLOSE_DRAIN_S = 3.0
HOST_IDENTITY_WAIT_S = 6.0
"""How long after a host arrives the first key waits for its PnP ID (``Modalias``), if it has none yet.

bluetoothd reads it from the host's Device Information service after
resolving the host's services: 3.3 s after that in the emulated guest. Until
then a host on BlueZ 5.66 looks like any other and would be sent keys its hog
drops (``hostcompat``). BlueZ keeps the ID of a bonded host, so this costs
time once, or on every connection of a host that publishes no PnP ID.
"""


class ReportPacer:
    """Window and replay bookkeeping, separate from BlueZ so it can be tested on its own.

    ``write`` is whatever hands a report to the radio. All methods are
    thread-safe; ``delivered``/``lost`` come from the HCI monitor thread.
    """

    def __init__(self, window: int) -> None:
        self.window = window
        self.outstanding: deque[bytes] = deque()
        self.replay: deque[bytes] = deque()
        self.delivered_reports = 0
        self.replayed_reports = 0
        self.condition = threading.Condition()
        self.host_address: str | None = None
        self.lost_at = float("-inf")

    def delivered(self, address: str | None, value: bytes) -> None:
        with self.condition:
            if not self._is_host(address) or not self.outstanding:
                return
            if self.outstanding[0] != value:
                log.debug("bluetooth: acknowledged %s but waiting for %s", value.hex(), self.outstanding[0].hex())
                return
            self.outstanding.popleft()
            self.delivered_reports += 1
            self.condition.notify_all()

    def lost(self, address: str | None) -> None:
        """The host's link is gone: everything not yet acknowledged goes back in line, in order.

        ``lost_at`` makes the link wait for the host's next connection (see
        ``BluetoothLink._live_host``).
        """
        with self.condition:
            if not self._is_host(address):
                return
            self.lost_at = time.monotonic()
            if self.outstanding:
                log.warning(
                    "bluetooth: link dropped with %d reports unacknowledged; they will be sent again",
                    len(self.outstanding),
                )
            self.replay.extendleft(reversed(self.outstanding))
            self.outstanding.clear()
            self.condition.notify_all()

    def _is_host(self, address: str | None) -> bool:
        return address is None or self.host_address is None or address.upper() == self.host_address.upper()


class BluetoothLink:
    """``ReportLink`` over a ``BluetoothPeripheral``; see the module docstring."""

    name = "bluetooth"

    def __init__(
        self,
        peripheral: BluetoothPeripheral,
        window: int | None = None,
        owns_peripheral: bool = False,
        identity_wait_s: float = HOST_IDENTITY_WAIT_S,
    ) -> None:
        self.peripheral = peripheral
        self.identity_wait_s = identity_wait_s
        self.pacer = ReportPacer(window or peripheral.settings.report_window)
        self.owns_peripheral = owns_peripheral
        self._last_report: bytes | None = None
        """None until the first key report: a voxkey before this one (killed mid-key: an OOM kill, a power cut)
        may have left a key held on a host that kept its link, so the first report lets go of every key."""
        self._waiting_logged = False
        self._monitor: HciMonitor | None = None
        self._ledger: DeliveryLedger | None = None
        self.kept: KeptText | None = None
        """The daemon's kept-text rule (set by ``HostLink``); None: a one-shot ``voxkey type``."""
        peripheral.add_listener(self._peripheral_changed)

    def start_delivery_tracking(self) -> None:
        """Watch the controller's acknowledgements (needs CAP_NET_RAW)."""
        ledger = DeliveryLedger(self._on_delivered, self._on_lost)
        self._ledger = ledger
        index = int(self.peripheral.settings.adapter.removeprefix("hci"))
        self._monitor = HciMonitor(index, ledger)
        self._monitor.start()

    # ------------------------------------------------------------- ReportLink

    def wait_for_host(self, deadline: float | None) -> None:
        with self.pacer.condition:
            self._wait_ready(deadline)
            self._drain_replay(deadline)
            if self._last_report is None:
                self._clear_to_write(deadline)
                self._write(RELEASE_ALL)

    def send(self, report: bytes, deadline: float | None) -> None:
        with self.pacer.condition:
            self._clear_to_write(deadline)
            self._write(report)

    def send_consumer(self, usage: int, deadline: float | None = None) -> None:
        """Press and release one consumer-control key (e.g. ``hid.CONSUMER_EJECT``), paced and replayed like keys.

        A host that never subscribed to the media-key report would get nothing
        and acknowledge nothing, which would hold the window shut for the text
        after it; so that is an error instead.
        """
        with self.pacer.condition:
            self._clear_to_write(deadline)
            if not self.peripheral.consumer_subscribed:
                host = self._live_host()
                raise TransportError(
                    f"the Bluetooth host {host.address if host else ''} did not subscribe to media keys; "
                    "it cannot receive Eject"
                )
            for value in (consumer_report(usage), CONSUMER_RELEASE):
                self._clear_to_write(deadline)
                self._write_consumer(value)

    def host_id(self) -> str | None:
        """The address of the host that is there, ready for reports (see ``voxkey.kept``)."""
        with self.pacer.condition:
            host = self._live_host()
            return host.address.upper() if host is not None else None

    def discard_kept(self) -> list[bytes]:
        """Drop the reports kept for a host that left (the user dropped the kept text, or it expired)."""
        with self.pacer.condition:
            reports = list(self.pacer.replay)
            self.pacer.replay.clear()
            if reports:
                log.warning("bluetooth: %d key reports kept for host %s dropped", len(reports), self.pacer.host_address)
            return reports

    def connection_interval_ms(self) -> float | None:
        """The interval of the current host's link as its controller reported it (needs delivery tracking)."""
        address = self.pacer.host_address
        if self._ledger is None or address is None:
            return None
        return self._ledger.intervals_ms.get(address.upper())

    def notification_pdus(self) -> dict[str, int] | None:
        """Notification PDUs sent to the current host, single and multiple (needs delivery tracking)."""
        address = self.pacer.host_address
        if self._ledger is None or address is None:
            return None
        return dict(self._ledger.notification_pdus.get(address.upper(), {"single": 0, "multiple": 0}))

    def led_state(self) -> int:
        return self.peripheral.leds

    def release_all(self) -> None:
        with self.pacer.condition:
            host = self._live_host()
            if self._last_report == RELEASE_ALL or host is None or self._problem(host):
                return  # nothing held, nobody there, or a host whose stack drops every report (hostcompat)
            try:
                self._write(RELEASE_ALL)
            except Exception as exc:  # best effort by contract
                log.debug("bluetooth: release on close failed: %s", exc)

    def drain(self, timeout_s: float) -> bool:
        """Wait until every written report was acknowledged; False if some still are not."""
        deadline = time.monotonic() + timeout_s
        with self.pacer.condition:
            while self.pacer.outstanding or self.pacer.replay:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if self.pacer.replay and self._live_host() is not None:
                    try:
                        self._drain_replay(deadline)
                    except HostUnavailableError:
                        return False
                    continue
                self.pacer.condition.wait(min(remaining, WAIT_SLICE_S))
            host = self._live_host()
            if host is not None and (problem := self._problem(host)):  # its Modalias came after the last report
                raise TransportError(f"Bluetooth host {host.address}: {problem}")
            return True

    def close(self) -> None:
        if not self.drain(CLOSE_DRAIN_S):
            log.warning(
                "bluetooth: %d key reports not acknowledged by the host at close",
                len(self.pacer.outstanding) + len(self.pacer.replay),
            )
        if self._monitor is not None:
            self._monitor.close()
            self._monitor = None
        if self.owns_peripheral:
            self.peripheral.close()

    # ------------------------------------------------------------- internals (condition held)

    def _live_host(self) -> DeviceView | None:
        """The ready host, unless it is the connection the controller already reported lost.

        BlueZ's D-Bus learns of a drop a second or more after the HCI monitor
        (``ReportPacer.lost``); reports written to that connection meanwhile would
        vanish without a trace, so the host counts again only once it arrived anew.
        """
        host = self.peripheral.ready_host()
        if host is not None and self.peripheral.host_arrived_at <= self.pacer.lost_at:
            return None
        return host

    def _problem(self, host: DeviceView) -> str | None:
        """Why this host types nothing: its stack (``hostcompat``), or the opcodes that went on the air."""
        if host.problem:
            return host.problem
        if self._ledger is None:
            return None
        sent = self._ledger.notification_pdus.get(host.address.upper(), {})
        return unheard_notifications(host.modalias, sent.get("multiple", 0))

    def _wait_ready(self, deadline: float | None) -> None:
        while True:
            host = self._live_host()
            if host is not None and (problem := self._problem(host)):
                # Its controller would acknowledge every report while its desktop typed nothing:
                # an error, never "delivered" (hostcompat).
                raise TransportError(f"Bluetooth host {host.address}: {problem}")
            now = time.monotonic()
            settling = self.peripheral.host_arrived_at + self.peripheral.settings.host_settle_s - now
            if host is not None and settling > 0:
                self._wait(deadline, f"host {host.address} subscribed but did not settle", min(settling, WAIT_SLICE_S))
                continue
            identifying = self.peripheral.host_arrived_at + self.identity_wait_s - now
            if host is not None and not host.modalias and identifying > 0:
                why = f"host {host.address} did not tell which Bluetooth stack it runs"
                self._wait(deadline, why, min(identifying, WAIT_SLICE_S))
                continue
            if host is not None and not self._admitted(host.address):
                self._wait(deadline, f"host {host.address} is not the one the kept text is for")
                continue
            if host is not None:
                if self.pacer.host_address != host.address:
                    self.pacer.host_address = host.address
                if self._waiting_logged:
                    log.info("bluetooth: host %s is back, typing resumes", host.address)
                self._waiting_logged = False
                return
            if self.kept is not None:
                self.kept.host_gone()  # what waits now (replay, the text behind it) is kept text
                self.kept.check()
            if not self._waiting_logged:
                log.warning("bluetooth: waiting for a bonded host (%s)", self.peripheral.state.value)
                self._waiting_logged = True
            self._wait(deadline, f"no bonded Bluetooth host connected ({self.peripheral.state.value})")

    def _admitted(self, address: str) -> bool:
        """May reports go to the host at ``address``? Kept reports only ever go to the host they were for.

        With the daemon's ``kept`` rule that host must also be back soon enough, or the user tapped
        (``voxkey.kept``); without it (``voxkey type``) replayed reports wait for their own host.
        """
        if self.kept is not None:
            if self.pacer.replay:
                self.kept.host_gone()  # the link dropped: even a host that is back at once may be another
            return self.kept.host_ready(f"{self.name}:{address.upper()}") is Resume.TYPE
        meant_for = self.pacer.host_address
        return not self.pacer.replay or meant_for is None or meant_for.upper() == address.upper()

    def _clear_to_write(self, deadline: float | None) -> None:
        """Host ready, nothing left to replay, room in the window: all three at once.

        Waiting for room can outlast a drop and a reconnection, which refills the
        replay queue; writing then would put new text before the lost reports.
        """
        while True:
            self._wait_ready(deadline)
            self._drain_replay(deadline)
            self._wait_window(deadline)
            if not self.pacer.replay and self._live_host() is not None:
                return

    def _drain_replay(self, deadline: float | None) -> None:
        while self.pacer.replay:
            self._wait_ready(deadline)
            self._wait_window(deadline)
            if not self.pacer.replay:
                return
            report = self.pacer.replay.popleft()
            self.pacer.replayed_reports += 1
            log.debug("bluetooth: replaying %s", report.hex())
            if len(report) == len(RELEASE_ALL):
                self._write(report)
            else:
                self._write_consumer(report)

    def _wait_window(self, deadline: float | None) -> None:
        while len(self.pacer.outstanding) >= self.pacer.window:
            self._wait(deadline, "the Bluetooth host stopped acknowledging key reports")
            if self._live_host() is None:
                self._wait_ready(deadline)

    def _write(self, report: bytes) -> None:
        self.pacer.outstanding.append(report)
        self._last_report = report
        self.peripheral.notify_input(report)

    def _write_consumer(self, value: bytes) -> None:
        self.pacer.outstanding.append(value)
        self.peripheral.notify_consumer(int.from_bytes(value, "little"))

    def _wait(self, deadline: float | None, why: str, slice_s: float = WAIT_SLICE_S) -> None:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HostUnavailableError(why)
            self.pacer.condition.wait(min(remaining, slice_s))
        else:
            self.pacer.condition.wait(slice_s)

    def _peripheral_changed(self) -> None:
        with self.pacer.condition:
            self.pacer.condition.notify_all()

    def _on_delivered(self, address: str | None, value: bytes) -> None:
        self.pacer.delivered(address, value)

    def _on_lost(self, address: str | None, values: list[bytes]) -> None:
        self.pacer.lost(address)


def open_bluetooth_link(settings: BluetoothSettings) -> BluetoothLink:
    """Start the Bluetooth keyboard and return its ``ReportLink`` (closing the link stops the keyboard)."""
    peripheral = BluetoothPeripheral(settings)
    link = BluetoothLink(peripheral, owns_peripheral=True)
    link.start_delivery_tracking()
    try:
        peripheral.start()
    except BaseException:
        link.close()
        raise
    return link
