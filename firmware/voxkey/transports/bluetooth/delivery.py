"""Which key reports the host's Bluetooth controller has acknowledged, read from the HCI monitor.

Why this exists: BlueZ sends a GATT notification when we emit it and tells us
nothing more. ATT notifications are not acknowledged, and between our D-Bus
signal and the air there are three queues (bluetoothd, the kernel, the
controller's buffers). When a host walks out of range, whatever sits in those
queues is silently dropped, and text would be lost.

The controller, however, does report delivery: every ACL packet handed to it
is later counted in a *Number Of Completed Packets* event, and an LE link
layer frees a packet only once the peer acknowledged it. The kernel mirrors
all HCI traffic on its monitor channel (what ``btmon`` reads; needs
CAP_NET_RAW). So this module watches, per connection handle, the ACL packets
that carry ATT notifications in the order they went to the controller, and
turns completion events into "this notification value reached the host" and
disconnection events into "these never made it".

``DeliveryLedger`` is the bookkeeping (pure, unit-tested);
``HciMonitor`` feeds it from the kernel's monitor socket.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import select
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from voxkey.errors import BluetoothError

log = logging.getLogger(__name__)

AF_BLUETOOTH = getattr(socket, "AF_BLUETOOTH", 31)  # Python built without bluez headers lacks the names
BTPROTO_HCI = getattr(socket, "BTPROTO_HCI", 1)
HCI_CHANNEL_MONITOR = 2
HCI_DEV_NONE = 0xFFFF
MONITOR_NEW_INDEX = 0
MONITOR_DEL_INDEX = 1
MONITOR_EVENT = 3
MONITOR_ACL_TX = 4
MONITOR_CLOSE_INDEX = 9
EVENT_DISCONNECTION_COMPLETE = 0x05
EVENT_NUMBER_OF_COMPLETED_PACKETS = 0x13
EVENT_LE_META = 0x3E
LE_CONNECTION_COMPLETE = 0x01
LE_CONNECTION_UPDATE_COMPLETE = 0x03
CONNECTION_INTERVAL_UNIT_MS = 1.25
LE_ENHANCED_CONNECTION_COMPLETE = 0x0A
L2CAP_CID_ATT = 0x0004
L2CAP_CID_DYNAMIC = 0x0040
ATT_HANDLE_VALUE_NOTIFICATION = 0x1B
ATT_MULTIPLE_HANDLE_VALUE_NOTIFICATION = 0x23
ACL_PB_CONTINUATION = 0x01


@dataclass
class _Packet:
    notifications: list[bytes]
    """The notified values this ACL packet carries (whole ATT notifications only)."""


@dataclass
class DeliveryLedger:
    """ACL packets per connection handle, oldest first, until completed or lost.

    ``on_delivered(address, value)`` fires for each acknowledged notification
    packet (other ATT traffic just takes its place in line) and
    ``on_lost(address, values)`` when a connection ends; ``address`` is the
    peer's, or None for a connection made before the monitor started.
    """

    on_delivered: Callable[[str | None, bytes], None]
    on_lost: Callable[[str | None, list[bytes]], None]
    in_flight: dict[int, deque[_Packet]] = field(default_factory=dict)
    addresses: dict[int, str] = field(default_factory=dict)
    fragments: dict[int, bytearray] = field(default_factory=dict)
    """An L2CAP frame split over several ACL packets, per handle, until its last fragment is sent.

    BlueZ batches notifications written together into one Multiple Handle
    Value Notification; eight replayed reports made a ~100-byte PDU that the
    controller's ACL buffer size split. Unparsed, those reports were never
    acknowledged and the report window stayed shut after every reconnection.
    """

    intervals_ms: dict[str, float] = field(default_factory=dict)
    """The connection interval of each peer's current link: what the host granted (``hardware/bluetooth.md``)."""
    notification_pdus: dict[str, dict[str, int]] = field(default_factory=dict)
    """Notification PDUs sent to each peer by kind, ``single`` (0x1B) or ``multiple`` (0x23): which one
    bluetoothd chose decides whether a BlueZ 5.55-5.66 host hears them (``hostcompat``)."""

    def interval_changed(self, handle: int, interval_ms: float, address: str | None = None) -> None:
        address = address or self.addresses.get(handle)
        if address is None:
            return
        if self.intervals_ms.get(address) != interval_ms:
            log.info("bluetooth: link to %s: connection interval %.2f ms", address, interval_ms)
        self.intervals_ms[address] = interval_ms

    def connected(self, handle: int, address: str) -> None:
        self.in_flight[handle] = deque()
        self.addresses[handle] = address
        self.fragments.pop(handle, None)

    def acl_sent(self, handle: int, data: bytes, continuation: bool) -> None:
        """One ACL packet to the controller; a frame's notifications ride on the packet that ends it."""
        queue = self.in_flight.setdefault(handle, deque())
        if continuation:
            frame = self.fragments.get(handle)
            if frame is None:
                queue.append(_Packet([]))
                return
            frame.extend(data)
            if len(frame) < 4 + struct.unpack_from("<H", frame)[0]:
                queue.append(_Packet([]))
                return
            del self.fragments[handle]
            queue.append(self._packet(handle, bytes(frame)))
            return
        self.fragments.pop(handle, None)
        if len(data) >= 4 and 4 + struct.unpack_from("<H", data)[0] > len(data):
            self.fragments[handle] = bytearray(data)
            queue.append(_Packet([]))
            return
        queue.append(self._packet(handle, data))

    def _packet(self, handle: int, acl_payload: bytes) -> _Packet:
        kind, values = _notified_values(acl_payload)
        address = self.addresses.get(handle)
        if kind and address is not None:
            counts = self.notification_pdus.setdefault(address, {"single": 0, "multiple": 0})
            counts[kind] += 1
        return _Packet(values)

    def completed(self, handle: int, count: int) -> None:
        queue = self.in_flight.get(handle)
        for _ in range(count):
            if not queue:
                return  # packets sent before we started watching
            packet = queue.popleft()
            for value in packet.notifications:
                self.on_delivered(self.addresses.get(handle), value)

    def disconnected(self, handle: int) -> None:
        queue = self.in_flight.pop(handle, deque())
        self.fragments.pop(handle, None)  # a frame cut off mid-way: the link still holds its reports
        address = self.addresses.pop(handle, None)
        self.on_lost(address, [value for packet in queue for value in packet.notifications])

    def controller_closed(self) -> None:
        """The controller went down (rfkill, power off, a driver reset, unplugged): every link ended with it.

        The kernel then drops its connections and its queue of unsent packets
        without any Disconnection Complete from the controller, so this is the
        only sign that those reports never left. Without it they stayed
        "written" forever and the window never opened again.
        """
        handles = list(self.in_flight)
        for handle in handles:
            self.disconnected(handle)
        if not handles:
            self.on_lost(None, [])


def _notified_values(acl_payload: bytes) -> tuple[str, list[bytes]]:
    """The kind (``single``, ``multiple``, or "" for other traffic) and values of the ATT notification in
    one ACL start packet.

    ATT runs on the fixed channel 0x0004 or, with Enhanced ATT (BlueZ ≥ 5.6x and
    a host that supports it), on credit-based channels with dynamic CIDs whose
    first frame starts with a 2-byte SDU length. EATT also allows Multiple
    Handle Value Notification, several values in one PDU.
    """
    if len(acl_payload) < 5:
        return "", []
    length, cid = struct.unpack_from("<HH", acl_payload)
    if length + 4 > len(acl_payload):
        return "", []  # incomplete: the ledger reassembles fragments before asking
    frame = acl_payload[4 : 4 + length]
    if cid == L2CAP_CID_ATT:
        pdu = frame
    elif cid >= L2CAP_CID_DYNAMIC and len(frame) >= 2 and struct.unpack_from("<H", frame)[0] == len(frame) - 2:
        pdu = frame[2:]
    else:
        return "", []
    if len(pdu) >= 3 and pdu[0] == ATT_HANDLE_VALUE_NOTIFICATION:
        return "single", [bytes(pdu[3:])]
    if len(pdu) >= 5 and pdu[0] == ATT_MULTIPLE_HANDLE_VALUE_NOTIFICATION:
        values, index = [], 1
        while index + 4 <= len(pdu):
            value_length = struct.unpack_from("<H", pdu, index + 2)[0]
            values.append(bytes(pdu[index + 4 : index + 4 + value_length]))
            index += 4 + value_length
        return "multiple", values
    return "", []


def _format_address(raw: bytes) -> str:
    return ":".join(f"{byte:02X}" for byte in reversed(raw))


def feed(ledger: DeliveryLedger, opcode: int, payload: bytes) -> None:
    """Apply one monitor record (already filtered to our controller) to the ledger."""
    if opcode in (MONITOR_CLOSE_INDEX, MONITOR_DEL_INDEX):
        ledger.controller_closed()
    elif opcode == MONITOR_ACL_TX and len(payload) >= 4:
        header, _length = struct.unpack_from("<HH", payload)
        handle, boundary = header & 0x0FFF, (header >> 12) & 0x03
        ledger.acl_sent(handle, payload[4:], continuation=boundary == ACL_PB_CONTINUATION)
    elif opcode == MONITOR_EVENT and len(payload) >= 2:
        code, parameters = payload[0], payload[2:]
        if code == EVENT_NUMBER_OF_COMPLETED_PACKETS and parameters:
            for index in range(parameters[0]):
                if len(parameters) < 1 + 4 * (index + 1):
                    break
                handle, count = struct.unpack_from("<HH", parameters, 1 + 4 * index)
                ledger.completed(handle & 0x0FFF, count)
        elif code == EVENT_DISCONNECTION_COMPLETE and len(parameters) >= 3 and parameters[0] == 0:
            ledger.disconnected(struct.unpack_from("<H", parameters, 1)[0] & 0x0FFF)
        elif code == EVENT_LE_META and parameters:
            _le_meta(ledger, parameters)


def _le_meta(ledger: DeliveryLedger, parameters: bytes) -> None:
    sub_event = parameters[0]
    if sub_event in (LE_CONNECTION_COMPLETE, LE_ENHANCED_CONNECTION_COMPLETE) and len(parameters) >= 12:
        status, handle = parameters[1], struct.unpack_from("<H", parameters, 2)[0] & 0x0FFF
        if status == 0:
            address = _format_address(parameters[6:12])
            ledger.connected(handle, address)
            # The interval follows the peer address, and in the enhanced event two resolvable addresses too.
            at = 12 if sub_event == LE_CONNECTION_COMPLETE else 24
            if len(parameters) >= at + 2:
                interval = struct.unpack_from("<H", parameters, at)[0] * CONNECTION_INTERVAL_UNIT_MS
                ledger.interval_changed(handle, interval, address)
    elif sub_event == LE_CONNECTION_UPDATE_COMPLETE and len(parameters) >= 6 and parameters[1] == 0:
        handle, interval = struct.unpack_from("<HH", parameters, 2)
        ledger.interval_changed(handle & 0x0FFF, interval * CONNECTION_INTERVAL_UNIT_MS)


class _SockaddrHci(ctypes.Structure):
    _fields_ = (("family", ctypes.c_ushort), ("device", ctypes.c_ushort), ("channel", ctypes.c_ushort))


def open_monitor_socket() -> socket.socket:
    """The kernel's HCI monitor channel (Python's ``bind`` cannot select a channel, hence ctypes)."""
    try:
        sock = socket.socket(AF_BLUETOOTH, socket.SOCK_RAW, BTPROTO_HCI)
    except OSError as exc:
        raise BluetoothError(f"cannot open an HCI socket ({exc.strerror}); is the bluetooth module loaded?") from exc
    libc = ctypes.CDLL(None, use_errno=True)
    address = _SockaddrHci(AF_BLUETOOTH, HCI_DEV_NONE, HCI_CHANNEL_MONITOR)
    if libc.bind(sock.fileno(), ctypes.byref(address), ctypes.sizeof(address)) != 0:
        error = ctypes.get_errno()
        sock.close()
        if error == errno.EPERM:
            raise BluetoothError(
                "reading Bluetooth delivery reports needs CAP_NET_RAW: run voxkey as root or grant it "
                "(systemd: AmbientCapabilities=CAP_NET_RAW)"
            )
        raise BluetoothError(f"cannot open the HCI monitor: {os.strerror(error)}")
    return sock


class HciMonitor:
    """Reads the monitor channel in a thread and keeps a ledger for one controller index."""

    def __init__(self, controller_index: int, ledger: DeliveryLedger) -> None:
        self.controller_index = controller_index
        self.ledger = ledger
        self._socket = open_monitor_socket()
        self._stop_read, self._stop_write = os.pipe()
        self._thread = threading.Thread(target=self._run, name="voxkey-hci-monitor", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        os.write(self._stop_write, b"x")
        self._thread.join(timeout=2)
        self._socket.close()
        os.close(self._stop_read)
        os.close(self._stop_write)

    def _run(self) -> None:
        while True:
            readable, _, _ = select.select([self._socket.fileno(), self._stop_read], [], [])
            if self._stop_read in readable:
                return
            try:
                record = self._socket.recv(4096)
            except OSError as exc:
                log.error("bluetooth: HCI monitor failed: %s", exc)
                return
            if len(record) < 6:
                continue
            opcode, index, length = struct.unpack_from("<HHH", record)
            if index != self.controller_index:
                continue
            with self._lock:
                try:
                    feed(self.ledger, opcode, record[6 : 6 + length])
                except Exception:  # a malformed record must not end delivery tracking
                    log.exception("bluetooth: could not parse HCI monitor record %s", record[:32].hex())
