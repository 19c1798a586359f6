"""Bluetooth keyboard pieces that need no radio: report map, GATT tree, delivery ledger, pacing."""

from __future__ import annotations

import struct
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from dbus_fast import DBusError, Variant

from voxkey.errors import BluetoothError, ConfigError, HostUnavailableError, TransportError
from voxkey.hid import CONSUMER_EJECT, RELEASE_ALL, keyboard_report_descriptor
from voxkey.keymap import Layout, decode, encode
from voxkey.transports.base import Keyboard
from voxkey.transports.bluetooth import bluez
from voxkey.transports.bluetooth.advertising import Advertisement
from voxkey.transports.bluetooth.agent import PairingAgent
from voxkey.transports.bluetooth.delivery import (
    MONITOR_ACL_TX,
    MONITOR_CLOSE_INDEX,
    MONITOR_DEL_INDEX,
    MONITOR_EVENT,
    DeliveryLedger,
    feed,
)
from voxkey.transports.bluetooth.devices import DeviceView
from voxkey.transports.bluetooth.gatt import (
    GattCallbacks,
    HidApplication,
    consumer_report,
    hid_information,
    pnp_id,
    report_map,
)
from voxkey.transports.bluetooth.link import BluetoothLink, ReportPacer
from voxkey.transports.bluetooth.settings import BluetoothSettings, BluetoothState

US = Layout.load("us")


# ----------------------------------------------------------------------------- report map


def items(descriptor: bytes) -> list[tuple[int, bytes]]:
    """Short items as (prefix with size bits cleared, data)."""
    out, index = [], 0
    while index < len(descriptor):
        prefix = descriptor[index]
        size = (0, 1, 2, 4)[prefix & 3]
        out.append((prefix & 0xFC, descriptor[index + 1 : index + 1 + size]))
        index += 1 + size
    return out


def test_report_map_is_the_usb_keyboard_with_report_id_1_then_consumer_control_id_2() -> None:
    usb = keyboard_report_descriptor()
    mapped = report_map()
    assert mapped[:6] == usb[:6] + b""  # usage page, usage keyboard, collection application
    assert mapped[6:8] == bytes([0x85, 0x01])
    assert mapped[8 : 8 + len(usb) - 6] == usb[6:]
    parsed = items(mapped)
    report_ids = [data[0] for prefix, data in parsed if prefix == 0x84]
    assert report_ids == [1, 2]
    collections = [data for prefix, data in parsed if prefix == 0xA0]
    assert collections == [b"\x01", b"\x01"]
    assert sum(1 for prefix, _ in parsed if prefix == 0xC0) == 2
    # consumer collection: 16-bit array input on the Consumer page
    consumer = parsed[next(i for i, (p, d) in enumerate(parsed) if p == 0x84 and d == b"\x02") - 3 :]
    assert (0x04, b"\x0c") in consumer and (0x74, b"\x10") in consumer and (0x80, b"\x00") in consumer


def test_report_map_refuses_a_descriptor_that_already_has_report_ids() -> None:
    with pytest.raises(ValueError, match="no report IDs"):
        report_map(bytes.fromhex("05 01 09 06 a1 01 85 03 c0"))


def test_report_id_detection_is_not_fooled_by_a_data_byte_0x85() -> None:
    descriptor = bytes.fromhex("05 01 09 06 a1 01 26 85 00 c0")  # Logical Maximum (0x0085)
    assert report_map(descriptor)[6:8] == b"\x85\x01"


def test_hid_information_pnp_id_and_consumer_report_bytes() -> None:
    assert hid_information() == bytes([0x11, 0x01, 0x00, 0x02])  # HID 1.11, normally connectable
    assert pnp_id() == bytes([0x02, 0x6B, 0x1D, 0x04, 0x01, 0x00, 0x01])
    assert consumer_report(CONSUMER_EJECT) == b"\xb8\x00"


# ----------------------------------------------------------------------------- GATT tree


def tree(app: HidApplication) -> dict[str, tuple[str, list[str]]]:
    out = {}
    for path, interfaces in app.managed_objects().items():
        for props in interfaces.values():
            flags = props["Flags"].value if "Flags" in props else []
            out[path] = (props["UUID"].value, flags)
    return out


def test_gatt_tree_has_hid_battery_and_device_information_services() -> None:
    app = HidApplication("/t")
    objects = tree(app)
    services = [objects[service.path][0] for service in app.services]
    assert services == [bluez.HID_SERVICE, bluez.BATTERY_SERVICE, bluez.DEVICE_INFORMATION_SERVICE]
    hid_uuids = [c.uuid for c in app.services[0].characteristics]
    assert hid_uuids == [
        bluez.HID_INFORMATION,
        bluez.REPORT_MAP,
        bluez.PROTOCOL_MODE,
        bluez.REPORT,
        bluez.REPORT,
        bluez.REPORT,
        bluez.BOOT_KEYBOARD_INPUT,
        bluez.BOOT_KEYBOARD_OUTPUT,
        bluez.HID_CONTROL_POINT,
    ]
    assert next(c.uuid for c in app.services[2].characteristics) == bluez.PNP_ID
    assert all(path.startswith("/t/service") for path in objects)


def bluez_layout(app: HidApplication) -> list[tuple[str, int]]:
    """Handles as BlueZ lays out a service: declaration, then per characteristic its declaration,
    value and (for notify/indicate) the CCC BlueZ adds, then the app's descriptors; one apart each."""
    rows = []
    for service in app.services:
        rows.append((f"service {service.uuid[4:8]}", service.handle))
        for characteristic in service.characteristics:
            rows.append((f"declaration {characteristic.uuid[4:8]}", characteristic.handle - 1))
            rows.append((f"value {characteristic.uuid[4:8]}", characteristic.handle))
            if "notify" in characteristic.flags:
                rows.append(("ccc", characteristic.handle + 1))
            rows.extend((f"descriptor {d.uuid[4:8]}", d.handle) for d in characteristic.descriptors)
    return rows


def test_every_attribute_has_a_fixed_handle_in_the_order_bluez_lays_out_a_service() -> None:
    app = HidApplication("/t")
    for service in app.services:
        rows = [handle for _, handle in bluez_layout(app) if service.handle <= handle <= service.end_handle]
        assert rows == list(range(service.handle, service.end_handle + 1)), (service.uuid, rows)
    starts = [service.handle for service in app.services]
    ends = [service.end_handle for service in app.services]
    assert all(end < start for end, start in zip(ends, starts[1:], strict=False)), "services must not overlap"
    assert app.keyboard_input.handle == 0x0108 and app.keyboard_input.descriptors[0].handle == 0x010A
    objects = app.managed_objects()
    for interface in app.interfaces():
        assert objects[interface.path][interface.name]["Handle"] == Variant("q", interface.handle)
        assert interface.handle >= 0x0100


def test_handles_are_the_same_in_every_run() -> None:
    first, second = HidApplication("/a"), HidApplication("/b", battery_level=40)
    assert [h for _, h in bluez_layout(first)] == [h for _, h in bluez_layout(second)]


def test_report_references_name_id_and_type_of_each_report() -> None:
    app = HidApplication("/t")
    references = {
        c.path: [d.value for d in c.descriptors if d.uuid == bluez.REPORT_REFERENCE]
        for c in (app.keyboard_input, app.keyboard_output, app.consumer_input)
    }
    assert references == {
        app.keyboard_input.path: [b"\x01\x01"],
        app.keyboard_output.path: [b"\x01\x02"],
        app.consumer_input.path: [b"\x02\x01"],
    }


def test_every_hid_characteristic_needs_an_encrypted_link() -> None:
    app = HidApplication("/t")
    for characteristic in app.services[0].characteristics:
        flags = set(characteristic.flags)
        assert not flags & {"read", "write"}, characteristic.uuid  # no unencrypted access
        assert flags & {"encrypt-read", "encrypt-write"}, characteristic.uuid
        if "notify" in flags:
            assert "encrypt-notify" in flags
        for descriptor in characteristic.descriptors:
            assert descriptor.flags == ["encrypt-read"]
    assert app.keyboard_input.flags == ["encrypt-read", "notify", "encrypt-notify"]


def test_reads_honour_offsets_and_refuse_hosts_that_are_not_bonded() -> None:
    app = HidApplication("/t", GattCallbacks(host_allowed=lambda device: device.endswith("GOOD")))
    good = {"device": Variant("o", "/org/bluez/hci0/dev_GOOD"), "offset": Variant("q", 10)}
    assert _read(app.report_map, good) == report_map()[10:]
    with pytest.raises(DBusError) as refused:
        _read(app.keyboard_input, {"device": Variant("o", "/org/bluez/hci0/dev_BAD")})
    assert refused.value.type == bluez.ERROR_NOT_AUTHORIZED
    # Device Information stays readable (hosts read it before bonding)
    assert _read(app.services[2].characteristics[0], {"device": Variant("o", "/x/dev_BAD")}) == pnp_id()


def _read(characteristic: object, options: dict[str, Variant]) -> bytes:
    """Call the Python body of ReadValue (dbus-fast keeps the original function on the class)."""
    for cls in type(characteristic).__mro__:
        function = cls.__dict__.get("ReadValue")
        if function is not None:
            return bytes(getattr(function, "__wrapped__", function)(characteristic, options))
    raise AssertionError("no ReadValue")


def test_led_writes_and_protocol_mode_switch_reach_the_owner() -> None:
    leds: list[bytes] = []
    modes: list[int] = []
    app = HidApplication("/t", GattCallbacks(on_output_report=leds.append, on_protocol_mode=modes.append))
    app._write_output_report(b"\x02")
    assert leds == [b"\x02"] and app.boot_output.value == b"\x02"
    assert app.input_report is app.keyboard_input
    app._write_protocol_mode(b"\x00")
    assert modes == [0] and app.input_report is app.boot_input
    with pytest.raises(DBusError):
        app._write_protocol_mode(b"\x05")


def test_advertisement_is_a_connectable_keyboard_with_the_hid_uuid() -> None:
    props = Advertisement("/a", "voxkey", discoverable=False).properties()
    assert props["Type"].value == "peripheral"
    assert props["Appearance"].value == 0x03C1
    assert props["ServiceUUIDs"].value == [bluez.uuid16(0x1812)]
    assert props["LocalName"].value == "voxkey"
    assert props["Discoverable"].value is False


def test_bluez_reading_the_advertisement_gets_the_object_itself_while_and_after_it_registers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bluetoothd asks ``GetManagedObjects`` on the advertisement's path inside ``RegisterAdvertisement``;
    an answer without the object itself made it advertise an empty, non-connectable set."""
    import asyncio

    from dbus_fast import Message, MessageType

    from voxkey.transports.bluetooth.adapter import AdapterSession
    from voxkey.transports.bluetooth.advertising import Advertiser
    from voxkey.transports.bluetooth.mirror import DeviceMirror, MirrorEvents

    def get_managed_objects(path: str) -> Message:
        return Message(path=path, interface=bluez.OBJECT_MANAGER, member="GetManagedObjects", serial=7)

    session = AdapterSession("hci0", powered=True, owner=":1.4")
    advertiser = Advertiser(session, "voxkey")
    answers: list[Message | None] = []

    async def bluez_call(
        bus: object, path: str, interface: str, member: str, *args: object, **kw: object
    ) -> list[object]:
        if member == "RegisterAdvertisement":
            answers.append(advertiser.answer_object_manager(get_managed_objects("/org/voxkey/advertisement0")))
        return []

    class Bus:
        def export(self, path: str, interface: object) -> None: ...
        def unexport(self, path: str, interface: object) -> None: ...

    monkeypatch.setattr(bluez, "call", bluez_call)
    assert advertiser.answer_object_manager(get_managed_objects("/org/voxkey/advertisement0")) is None
    session.bus = Bus()  # type: ignore[assignment]
    asyncio.run(advertiser.set(True))
    answers.append(advertiser.answer_object_manager(get_managed_objects("/org/voxkey/advertisement0")))
    for answer in answers:
        assert answer is not None and answer.message_type == MessageType.METHOD_RETURN and answer.reply_serial == 7
        [objects] = answer.body
        props = objects["/org/voxkey/advertisement0"][bluez.ADVERTISEMENT]
        assert props["Discoverable"].value is True and props["LocalName"].value == "voxkey"
    assert len(answers) == 2
    assert advertiser.answer_object_manager(get_managed_objects("/org/voxkey/hid")) is None  # dbus-fast answers
    # The mirror, the bus's other handler, leaves method calls alone (it returns nothing for anything).
    mirror = DeviceMirror(session.path, MirrorEvents(*(lambda *a: pytest.fail("no event") for _ in range(4))))
    assert mirror.on_message(get_managed_objects("/org/voxkey/advertisement0")) is None  # type: ignore[func-returns-value]


def test_agent_accepts_pairing_only_in_pairing_mode() -> None:
    pairing = False
    agent = PairingAgent("/agent", lambda: pairing, lambda device: device == "/known")
    confirm = _python_method(agent, "RequestConfirmation")
    with pytest.raises(DBusError) as refused:
        confirm(agent, "/new", 123456)
    assert refused.value.type == bluez.ERROR_REJECTED
    pairing = True
    confirm(agent, "/new", 123456)
    pairing = False
    _python_method(agent, "AuthorizeService")(agent, "/known", bluez.HID_SERVICE)
    with pytest.raises(DBusError):
        _python_method(agent, "AuthorizeService")(agent, "/stranger", bluez.HID_SERVICE)


def _python_method(obj: object, name: str):  # type: ignore[no-untyped-def]
    for cls in type(obj).__mro__:
        if name in cls.__dict__:
            function = cls.__dict__[name]
            return getattr(function, "__wrapped__", function)
    raise AssertionError(name)


def test_only_hosts_bonded_and_trusted_count_as_hosts() -> None:
    device = DeviceView("/d", paired=True, trusted=False)
    assert not device.is_bonded_host
    device.update({"Trusted": True})
    assert device.is_bonded_host
    device.update({"Bonded": False})  # BlueZ >= 5.67: paired without keys stored
    assert not device.is_bonded_host


def test_settings_are_validated_with_actionable_messages() -> None:
    assert BluetoothSettings().pairing_timeout_s == 120
    with pytest.raises(ConfigError, match="1-29 bytes"):
        BluetoothSettings(name="x" * 30)
    with pytest.raises(ConfigError, match="pairing_timeout_s"):
        BluetoothSettings(pairing_timeout_s=0)
    assert BluetoothState.WAITING_FOR_HOST.value == "waiting-for-host"


# ----------------------------------------------------------------------------- HCI monitor ledger


def acl(handle: int, payload: bytes, continuation: bool = False) -> bytes:
    header = handle | ((0x01 if continuation else 0x02) << 12)
    return struct.pack("<HH", header, len(payload)) + payload


def notification(value: bytes, att_handle: int = 0x41) -> bytes:
    att = bytes([0x1B]) + struct.pack("<H", att_handle) + value
    return struct.pack("<HH", len(att), 0x0004) + att


def nocp(handle: int, count: int) -> bytes:
    return bytes([0x13, 5, 1]) + struct.pack("<HH", handle, count)


def le_connection(handle: int, address: bytes) -> bytes:
    parameters = bytes([0x01, 0x00]) + struct.pack("<H", handle) + bytes([0x01, 0x00]) + address + bytes(7)
    return bytes([0x3E, len(parameters)]) + parameters


def test_ledger_reports_notifications_in_order_as_the_controller_completes_them() -> None:
    delivered: list[tuple[str | None, bytes]] = []
    lost: list[tuple[str | None, list[bytes]]] = []
    ledger = DeliveryLedger(lambda a, v: delivered.append((a, v)), lambda a, v: lost.append((a, v)))
    feed(ledger, MONITOR_EVENT, le_connection(0x40, bytes([1, 0, 1, 1, 0xAA, 0])))
    feed(ledger, MONITOR_ACL_TX, acl(0x40, notification(b"\x02\x00\x04" + bytes(5))))
    feed(ledger, MONITOR_ACL_TX, acl(0x40, bytes.fromhex("0500 0400 0a 1200")))  # an ATT read response
    feed(ledger, MONITOR_ACL_TX, acl(0x40, notification(RELEASE_ALL)))
    feed(ledger, MONITOR_ACL_TX, acl(0x40, notification(b"\x00\x00\x05" + bytes(5))))
    assert delivered == []
    feed(ledger, MONITOR_EVENT, nocp(0x40, 2))
    assert delivered == [("00:AA:01:01:00:01", b"\x02\x00\x04" + bytes(5))]
    feed(ledger, MONITOR_EVENT, nocp(0x40, 1))
    assert [value for _, value in delivered] == [b"\x02\x00\x04" + bytes(5), RELEASE_ALL]
    feed(ledger, MONITOR_EVENT, bytes([0x05, 4, 0x00]) + struct.pack("<H", 0x40) + bytes([0x13]))
    assert lost == [("00:AA:01:01:00:01", [b"\x00\x00\x05" + bytes(5)])]


def test_ledger_counts_every_link_lost_when_the_controller_goes_down() -> None:
    """rfkill, a power cut of the radio or a driver reset: the kernel drops the links without a Disconnection
    Complete, and the monitor only says the controller closed. What was not acknowledged by then never left."""
    delivered: list[bytes] = []
    lost: list[tuple[str | None, list[bytes]]] = []
    ledger = DeliveryLedger(lambda a, v: delivered.append(v), lambda a, v: lost.append((a, v)))
    feed(ledger, MONITOR_EVENT, le_connection(0x40, bytes([1, 0, 1, 1, 0xAA, 0])))
    feed(ledger, MONITOR_ACL_TX, acl(0x40, notification(b"first")))
    feed(ledger, MONITOR_ACL_TX, acl(0x40, notification(b"second")))
    feed(ledger, MONITOR_EVENT, nocp(0x40, 1))
    feed(ledger, MONITOR_CLOSE_INDEX, b"")
    assert delivered == [b"first"]
    assert lost == [("00:AA:01:01:00:01", [b"second"])]
    feed(ledger, MONITOR_EVENT, nocp(0x40, 1))  # a late count for the old handle delivers nothing
    assert delivered == [b"first"]
    feed(ledger, MONITOR_DEL_INDEX, b"")  # no link left: still a loss, so the pacer waits for a new connection
    assert lost[-1] == (None, [])


def eatt_frame(att: bytes, cid: int = 0x0041) -> bytes:
    """An Enhanced ATT K-frame as captured from BlueZ 5.66 in the guest: SDU length, then the ATT PDU."""
    sdu = struct.pack("<H", len(att)) + att
    return struct.pack("<HH", len(sdu), cid) + sdu


def test_ledger_reads_notifications_sent_over_enhanced_att_channels() -> None:
    delivered: list[bytes] = []
    ledger = DeliveryLedger(lambda a, v: delivered.append(v), lambda a, v: None)
    single = bytes([0x1B]) + struct.pack("<H", 0x41) + b"\x02\x00\x04" + bytes(5)
    multiple = bytes([0x23]) + struct.pack("<HH", 0x41, 8) + RELEASE_ALL + struct.pack("<HH", 0x48, 2) + b"\xb8\x00"
    error_response = bytes.fromhex("01 10 5a00 0a")  # captured: Read By Group Type → Attribute Not Found
    for att in (single, error_response, multiple):
        feed(ledger, MONITOR_ACL_TX, acl(42, eatt_frame(att)))
    feed(ledger, MONITOR_EVENT, nocp(42, 3))
    assert delivered == [b"\x02\x00\x04" + bytes(5), RELEASE_ALL, b"\xb8\x00"]


def test_ledger_counts_continuation_fragments_as_packets() -> None:
    delivered: list[bytes] = []
    ledger = DeliveryLedger(lambda a, v: delivered.append(v), lambda a, v: None)
    whole = notification(b"x" * 30)
    feed(ledger, MONITOR_ACL_TX, acl(1, whole[:20]))
    feed(ledger, MONITOR_ACL_TX, acl(1, whole[20:], continuation=True))
    feed(ledger, MONITOR_ACL_TX, acl(1, notification(b"ok")))
    feed(ledger, MONITOR_EVENT, nocp(1, 1))
    assert delivered == []  # only the first fragment is acknowledged: the value is not there yet
    feed(ledger, MONITOR_EVENT, nocp(1, 1))
    assert delivered == [b"x" * 30]
    feed(ledger, MONITOR_EVENT, nocp(1, 1))
    assert delivered == [b"x" * 30, b"ok"]


def test_ledger_reassembles_a_batch_of_reports_split_over_acl_packets() -> None:
    """BlueZ sends reports written together as one Multiple Handle Value Notification, split to the ACL size."""
    delivered: list[bytes] = []
    ledger = DeliveryLedger(lambda a, v: delivered.append(v), lambda a, v: None)
    reports = [bytes([0, 0, 4 + n, 0, 0, 0, 0, 0]) for n in range(8)]
    att = bytes([0x23]) + b"".join(struct.pack("<HH", 0x41, len(r)) + r for r in reports)
    frame = struct.pack("<HH", len(att), 0x0004) + att
    pieces = [frame[i : i + 27] for i in range(0, len(frame), 27)]
    for index, piece in enumerate(pieces):
        feed(ledger, MONITOR_ACL_TX, acl(1, piece, continuation=index > 0))
    feed(ledger, MONITOR_EVENT, nocp(1, len(pieces) - 1))
    assert delivered == []
    feed(ledger, MONITOR_EVENT, nocp(1, 1))
    assert delivered == reports


def test_ledger_counts_single_and_multiple_notification_pdus_per_host() -> None:
    """Which opcode bluetoothd chose is what a BlueZ 5.55-5.66 host's hog hears or drops (``hostcompat``)."""
    ledger = DeliveryLedger(lambda a, v: None, lambda a, v: None)
    feed(ledger, MONITOR_EVENT, le_connection(0x40, bytes([1, 0, 1, 1, 0xAA, 0])))
    multiple = bytes([0x23]) + struct.pack("<HH", 0x41, 8) + RELEASE_ALL + struct.pack("<HH", 0x41, 8) + RELEASE_ALL
    for payload in (notification(b"a"), notification(b"b"), struct.pack("<HH", len(multiple), 4) + multiple):
        feed(ledger, MONITOR_ACL_TX, acl(0x40, payload))
    feed(ledger, MONITOR_ACL_TX, acl(0x40, bytes.fromhex("0500 0400 0a 1200")))  # not a notification
    feed(ledger, MONITOR_ACL_TX, acl(0x77, notification(b"c")))  # a link made before the monitor started
    assert ledger.notification_pdus == {"00:AA:01:01:00:01": {"single": 2, "multiple": 1}}


def test_ledger_reads_the_monitor_opcodes_the_kernel_defines() -> None:
    """The numbers of ``btmon``'s monitor records (Linux ``hci_mon.h``), written out here instead of imported,
    so a wrong constant in the ledger is caught: 3 event, 4 ACL sent, 5 ACL received, 2 command, 1 and 9
    the controller removed or closed."""
    delivered: list[bytes] = []
    lost: list[tuple[str | None, list[bytes]]] = []
    ledger = DeliveryLedger(lambda a, v: delivered.append(v), lambda a, v: lost.append((a, v)))
    feed(ledger, 3, le_connection(0x40, bytes([1, 0, 1, 1, 0xAA, 0])))
    feed(ledger, 5, acl(0x40, notification(b"from the host")))  # received, not sent: not ours to count
    feed(ledger, 2, bytes([0x13, 0x0C, 0]))  # a command, not an event
    feed(ledger, 4, acl(0x40, notification(b"sent")))
    feed(ledger, 3, bytes([0x03, 11, 0x00]) + struct.pack("<H", 0x40) + bytes(8))  # BR/EDR Connection Complete
    feed(ledger, 3, bytes([0x0E, 4, 1, 0x05, 0x04, 0x00]))  # a Command Complete
    feed(ledger, 3, bytes([0xFF, 19]) + le_connection(0x40, bytes(6))[2:])  # a vendor event, not LE Meta
    feed(ledger, 3, nocp(0x40, 1))
    assert delivered == [b"sent"] and lost == []
    assert ledger.addresses == {0x40: "00:AA:01:01:00:01"}
    feed(ledger, 4, acl(0x40, notification(b"cut off")))
    feed(ledger, 9, b"")
    assert lost == [("00:AA:01:01:00:01", [b"cut off"])]
    feed(ledger, 1, b"")
    assert lost[-1] == (None, [])


def test_ledger_ignores_truncated_monitor_records_instead_of_failing() -> None:
    """A record cut short (a capture or a kernel bug) is skipped; the ledger keeps counting what comes after."""
    delivered: list[bytes] = []
    lost: list[tuple[str | None, list[bytes]]] = []
    ledger = DeliveryLedger(lambda a, v: delivered.append(v), lambda a, v: lost.append((a, v)))
    feed(ledger, MONITOR_EVENT, le_connection(0x40, bytes([1, 0, 1, 1, 0xAA, 0])))
    feed(ledger, MONITOR_ACL_TX, acl(0x40, notification(b"one")))
    shorts = (
        b"",
        b"\x13",
        b"\x3e\x00",
        b"\x3e\x05\x01\x00\x40\x00\x00",
        b"\x3e\x04\x03\x00\x40\x00",
        b"\x05\x02\x00\x40",
    )
    for short in shorts:
        feed(ledger, MONITOR_EVENT, short)
    feed(ledger, MONITOR_ACL_TX, b"\x40\x20\x00")  # shorter than an ACL header: no packet
    feed(ledger, MONITOR_EVENT, bytes([0x13, 9, 2]) + struct.pack("<HH", 0x40, 1))  # says 2 handles, has 1
    assert delivered == [b"one"] and lost == []
    assert ledger.addresses == {0x40: "00:AA:01:01:00:01"}
    assert not ledger.in_flight[0x40], "the 3-byte ACL record was not counted as a packet"


def test_ledger_completes_packets_of_several_links_reported_in_one_event() -> None:
    delivered: list[tuple[str | None, bytes]] = []
    ledger = DeliveryLedger(lambda a, v: delivered.append((a, v)), lambda a, v: None)
    feed(ledger, MONITOR_EVENT, le_connection(0x40, bytes([1, 0, 0, 0, 0, 0])))
    feed(ledger, MONITOR_EVENT, le_connection(0x41, bytes([2, 0, 0, 0, 0, 0])))
    for handle, value in ((0x40, b"a1"), (0x41, b"b1"), (0x40, b"a2"), (0x41, b"b2")):
        feed(ledger, MONITOR_ACL_TX, acl(handle, notification(value)))
    feed(ledger, MONITOR_EVENT, bytes([0x13, 9, 2]) + struct.pack("<HHHH", 0x41, 2, 0x40, 1))
    assert delivered == [("00:00:00:00:00:02", b"b1"), ("00:00:00:00:00:02", b"b2"), ("00:00:00:00:00:01", b"a1")]


def test_a_failed_connection_or_disconnection_changes_no_link_in_the_ledger() -> None:
    """Status bytes other than 0 mean the controller did not do it: no new link, and nothing is lost."""
    lost: list[tuple[str | None, list[bytes]]] = []
    ledger = DeliveryLedger(lambda a, v: None, lambda a, v: lost.append((a, v)))
    feed(ledger, MONITOR_EVENT, le_connection(0x40, bytes([1, 0, 1, 1, 0xAA, 0])))
    feed(ledger, MONITOR_ACL_TX, acl(0x40, notification(b"in flight")))
    failed = bytearray(le_connection(0x41, bytes([2, 0, 0, 0, 0, 0])))
    failed[3] = 0x3E  # Connection Failed to be Established
    feed(ledger, MONITOR_EVENT, bytes(failed))
    assert 0x41 not in ledger.addresses
    feed(ledger, MONITOR_EVENT, bytes([0x05, 4, 0x0C]) + struct.pack("<H", 0x40) + bytes([0x13]))  # disallowed
    assert lost == []
    feed(ledger, MONITOR_EVENT, bytes([0x05, 4, 0x00]) + struct.pack("<H", 0x40) + bytes([0x13]))
    assert lost == [("00:AA:01:01:00:01", [b"in flight"])]


def test_ledger_finds_notifications_only_in_att_frames() -> None:
    """Security Manager (CID 6) and LE signalling (CID 5) traffic, an ATT PDU too short to be a notification and
    an Enhanced ATT frame whose SDU length does not match take a packet's place but deliver no value."""
    delivered: list[bytes] = []
    ledger = DeliveryLedger(lambda a, v: delivered.append(v), lambda a, v: None)
    att = bytes([0x1B]) + struct.pack("<H", 0x41) + b"key"
    frames = [
        struct.pack("<HH", len(att), 0x0006) + att,
        struct.pack("<HH", len(att), 0x0005) + att,
        struct.pack("<HH", 2, 0x0004) + bytes([0x1B, 0x41]),
        struct.pack("<HH", len(att) + 2, 0x0041) + struct.pack("<H", len(att) + 1) + att,
        struct.pack("<HH", len(att) + 2, 0x003F) + struct.pack("<H", len(att)) + att,  # below the dynamic range
        struct.pack("<HH", 4, 0x0004) + bytes([0x23, 0x41, 0x00, 0x01]),  # a Multiple notification too short
        struct.pack("<HH", len(att) + 2, 0x0006) + struct.pack("<H", len(att)) + att,  # SMP, shaped like EATT
        struct.pack("<HH", 1, 0x0041) + b"\x00",  # a dynamic-channel frame too short for its SDU length
        eatt_frame(att, cid=0x0040),  # the first dynamic CID is Enhanced ATT too
        notification(b""),  # an empty value is still a notification
    ]
    for frame in frames:
        feed(ledger, MONITOR_ACL_TX, acl(1, frame))
    feed(ledger, MONITOR_EVENT, nocp(1, len(frames)))
    assert delivered == [b"key", b""]


def test_ledger_reads_values_of_any_length_from_a_multiple_notification() -> None:
    """Consumer reports (2 bytes) and one-byte values between keyboard reports: each value's length moves the next."""
    delivered: list[bytes] = []
    ledger = DeliveryLedger(lambda a, v: delivered.append(v), lambda a, v: None)
    values = [b"\x01", b"\xb8\x00", RELEASE_ALL, b"\x07"]
    att = bytes([0x23]) + b"".join(struct.pack("<HH", 0x41 + n, len(v)) + v for n, v in enumerate(values))
    feed(ledger, MONITOR_ACL_TX, acl(1, struct.pack("<HH", len(att), 0x0004) + att))
    feed(ledger, MONITOR_EVENT, nocp(1, 1))
    assert delivered == values


@pytest.mark.parametrize("value_length", [34, 300])
def test_ledger_waits_for_the_last_fragment_of_a_frame_whatever_its_length(value_length: int) -> None:
    """A frame is complete only at its L2CAP length plus the 4-byte header: not a byte earlier, for short values
    and for batches longer than 256 bytes (a big MTU)."""
    delivered: list[bytes] = []
    ledger = DeliveryLedger(lambda a, v: delivered.append(v), lambda a, v: None)
    value = bytes(range(256)) * 2
    value = value[:value_length]
    whole = notification(value)
    pieces = [whole[:20], whole[20:-2], whole[-2:]]  # the middle piece ends 2 bytes short of the frame
    for index, piece in enumerate(pieces):
        feed(ledger, MONITOR_ACL_TX, acl(1, piece, continuation=index > 0))
    feed(ledger, MONITOR_EVENT, nocp(1, 2))
    assert delivered == []
    feed(ledger, MONITOR_EVENT, nocp(1, 1))
    assert delivered == [value]
    big = notification(value)
    feed(ledger, MONITOR_ACL_TX, acl(1, big))
    feed(ledger, MONITOR_EVENT, nocp(1, 1))
    assert delivered == [value, value], "an unfragmented frame of that length is whole"


def test_ledger_records_the_interval_only_from_an_event_that_carries_it() -> None:
    ledger = DeliveryLedger(lambda a, v: None, lambda a, v: None)
    address = bytes([1, 0, 0, 0, 0, 0])
    complete = bytes([0x01, 0x00]) + struct.pack("<H", 0x40) + bytes([0x01, 0x00]) + address
    feed(ledger, MONITOR_EVENT, bytes([0x3E, 13]) + complete + b"\x18")  # interval cut off after one byte
    assert ledger.addresses == {0x40: "00:00:00:00:00:01"} and ledger.intervals_ms == {}
    feed(ledger, MONITOR_EVENT, bytes([0x3E, 14]) + complete + struct.pack("<H", 24))  # just long enough
    assert ledger.intervals_ms == {"00:00:00:00:00:01": 30.0}
    enhanced = bytes([0x0A, 0x00]) + struct.pack("<H", 0x41) + bytes([0x01, 0x00]) + bytes([2, 0, 0, 0, 0, 0])
    feed(ledger, MONITOR_EVENT, bytes([0x3E, 24]) + enhanced + bytes(12))  # no interval after the RPAs
    assert ledger.addresses[0x41] == "00:00:00:00:00:02" and "00:00:00:00:00:02" not in ledger.intervals_ms


def test_ledger_a_count_for_packets_sent_before_the_monitor_started_delivers_nothing_and_loses_no_place() -> None:
    delivered: list[bytes] = []
    ledger = DeliveryLedger(lambda a, v: delivered.append(v), lambda a, v: None)
    feed(ledger, MONITOR_ACL_TX, acl(7, notification(b"first")))
    feed(ledger, MONITOR_EVENT, nocp(7, 3))  # two more than we saw: older packets
    feed(ledger, MONITOR_ACL_TX, acl(7, notification(b"second")))
    assert delivered == [b"first"]
    feed(ledger, MONITOR_EVENT, nocp(7, 1))
    assert delivered == [b"first", b"second"]


def test_ledger_a_new_connection_on_a_reused_handle_starts_clean() -> None:
    """Handles are reused: a frame left half-sent by the old link must not swallow the new link's first packet."""
    delivered: list[tuple[str | None, bytes]] = []
    ledger = DeliveryLedger(lambda a, v: delivered.append((a, v)), lambda a, v: None)
    whole = notification(b"x" * 30)
    feed(ledger, MONITOR_ACL_TX, acl(0x40, whole[:20]))
    feed(ledger, MONITOR_EVENT, le_connection(0x40, bytes([3, 0, 0, 0, 0, 0])))
    feed(ledger, MONITOR_ACL_TX, acl(0x40, whole[20:], continuation=True))  # a stray tail: a packet, no value
    feed(ledger, MONITOR_ACL_TX, acl(0x40, notification(b"new")))
    feed(ledger, MONITOR_EVENT, nocp(0x40, 2))
    assert delivered == [("00:00:00:00:00:03", b"new")]


def test_the_monitor_thread_feeds_the_ledger_its_controller_s_records_and_survives_a_bad_one(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    from voxkey.transports.bluetooth import delivery

    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    monkeypatch.setattr(delivery, "open_monitor_socket", lambda: ours)
    delivered: list[bytes] = []
    done = threading.Event()

    def on_delivered(address: str | None, value: bytes) -> None:
        if value == b"poison":
            raise ValueError("a bug downstream of the ledger")
        delivered.append(value)
        if value == b"last":
            done.set()

    lost: list[list[bytes]] = []
    closed = threading.Event()

    def on_lost(address: str | None, values: list[bytes]) -> None:
        lost.append(values)
        closed.set()

    ledger = DeliveryLedger(on_delivered, on_lost)
    monitor = delivery.HciMonitor(1, ledger)
    monitor.start()

    def record(index: int, opcode: int, payload: bytes) -> bytes:
        return struct.pack("<HHH", opcode, index, len(payload)) + payload

    kernel.send(record(1, 4, acl(5, notification(b"ours"))))
    kernel.send(record(0, 4, acl(5, notification(b"another controller's"))))
    kernel.send(b"\x04\x00\x01")  # shorter than a record header
    kernel.send(b"\x04\x00\x01\x00\x00")
    kernel.send(record(1, 3, nocp(5, 1)))
    kernel.send(record(1, 4, acl(5, notification(b"poison"))))
    kernel.send(record(1, 3, nocp(5, 1)))  # raises inside the thread: logged, and reading goes on
    kernel.send(record(1, 4, acl(5, notification(b"last"))))
    kernel.send(record(1, 3, nocp(5, 1)) + b"trailing bytes beyond the record's length")
    assert done.wait(5), f"the monitor stopped reading: {delivered}"
    assert delivered == [b"ours", b"last"]
    assert "could not parse HCI monitor record" in caplog.text
    kernel.send(record(1, 4, acl(5, notification(b"cut off"))))
    kernel.send(record(1, 9, b""))  # the controller closed: a record that is only a header
    assert closed.wait(5), "a header-only record was not read"
    assert lost == [[b"cut off"]]
    monitor.close()
    assert not monitor._thread.is_alive()
    kernel.close()


def test_a_process_that_never_closed_its_ledger_s_monitor_still_exits() -> None:
    """An error path that skips ``close`` must not leave voxkey hanging at exit on the monitor's reader thread."""
    import subprocess
    import sys

    program = (
        "import socket\n"
        "from voxkey.transports.bluetooth import delivery\n"
        "ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
        "delivery.open_monitor_socket = lambda: ours\n"
        "delivery.HciMonitor(0, delivery.DeliveryLedger(print, print)).start()\n"
    )
    finished = subprocess.run([sys.executable, "-c", program], timeout=20, capture_output=True, text=True, check=False)
    assert finished.returncode == 0, finished.stderr
    # a hang would raise TimeoutExpired above


# ----------------------------------------------------------------------------- pacing and replay


class FakeRadio:
    """A peripheral stand-in at the library boundary: notifications land in a list, acks are driven by the test."""

    def __init__(self) -> None:
        self.settings = BluetoothSettings(report_window=3, host_settle_s=0)
        self.sent: list[bytes] = []
        self.connected = True
        self.leds = 0
        self.state = BluetoothState.CONNECTED
        self.listeners: list[object] = []
        self.host_arrived_at = 0.0
        self.consumer_subscribed = True
        self.modalias = "bluetooth:v004Cp0267d0100"
        """The host named its stack (here Apple's), so the link waits for nothing but the settle time."""

    def add_listener(self, listener: object) -> None:
        self.listeners.append(listener)

    def host_back(self) -> None:
        """The host reconnected: BlueZ resolved its services again (what the peripheral stamps as arrival)."""
        self.connected = True
        self.host_arrived_at = time.monotonic()

    def ready_host(self) -> DeviceView | None:
        return (
            DeviceView(
                "/h",
                address="AA:BB:CC:DD:EE:FF",
                connected=True,
                paired=True,
                trusted=True,
                services_resolved=True,
                modalias=self.modalias,
            )
            if (self.connected)
            else None
        )

    def notify_input(self, report: bytes) -> None:
        self.sent.append(report)

    def notify_consumer(self, usage: int) -> None:
        self.sent.append(usage.to_bytes(2, "little"))

    def close(self) -> None:
        return None


def test_the_first_report_a_host_gets_lets_go_of_every_key() -> None:
    """A voxkey killed mid-key left that key held on a host that kept its link; the next one releases it first."""
    radio = FakeRadio()
    link = BluetoothLink(radio)  # type: ignore[arg-type]
    link.wait_for_host(time.monotonic() + 1)
    assert radio.sent == [RELEASE_ALL]
    link.wait_for_host(time.monotonic() + 1)
    link.release_all()
    assert radio.sent == [RELEASE_ALL]  # once: after it the link knows the host holds nothing


def test_window_limits_unacknowledged_reports() -> None:
    radio = FakeRadio()
    link = BluetoothLink(radio, window=3)  # type: ignore[arg-type]
    for report in encode("ab", US)[:3]:
        link.send(report, deadline=None)
    assert len(radio.sent) == 3
    with pytest.raises(HostUnavailableError, match="stopped acknowledging"):
        link.send(RELEASE_ALL, deadline=time.monotonic() + 0.2)
    link.pacer.delivered(None, radio.sent[0])
    link.send(RELEASE_ALL, deadline=time.monotonic() + 0.2)
    assert len(radio.sent) == 4


def test_reports_lost_with_the_link_are_replayed_in_order_before_new_ones() -> None:
    radio = FakeRadio()
    link = BluetoothLink(radio, window=8)  # type: ignore[arg-type]
    reports = encode("xyz", US)
    for report in reports[:4]:
        link.send(report, deadline=None)
    link.pacer.delivered(None, reports[0])
    radio.connected = False
    link.pacer.lost("AA:BB:CC:DD:EE:FF")
    assert list(link.pacer.replay) == reports[1:4]
    with pytest.raises(HostUnavailableError):
        link.send(reports[4], deadline=time.monotonic() + 0.1)
    radio.host_back()
    link.send(reports[4], deadline=None)
    assert radio.sent == reports[:4] + reports[1:5]
    assert link.pacer.replayed_reports == 3


def test_a_dropped_link_mid_text_still_types_everything_exactly_once() -> None:
    radio = FakeRadio()
    link = BluetoothLink(radio, window=4)  # type: ignore[arg-type]
    host_has: list[bytes] = []
    stop = threading.Event()
    text = "Hello, world! Doubled: aa bb 1100 ~~\n" * 20

    dropped = threading.Event()
    received = [0]  # how many of radio.sent the host has taken (or lost with the link)

    def drop_then_restore() -> None:
        # The link dies with reports in flight: the host never gets the ones after this point. Waiting for
        # a moment with some in flight (the host may have caught up) keeps the scenario the same every run.
        while not stop.is_set():
            with link.pacer.condition:
                if len(host_has) >= 300 and received[0] < len(radio.sent):
                    radio.connected = False
                    link.pacer.lost("AA:BB:CC:DD:EE:FF")
                    received[0] = len(radio.sent)  # in the same step, however late the host thread runs next
                    break
            time.sleep(0.0005)
        else:
            return  # typing ended without a drop: the check on `dropped` fails the test
        dropped.set()
        time.sleep(0.05)
        radio.host_back()
        link._peripheral_changed()

    # acknowledge slowly so several reports are always in flight
    def slow_host() -> None:
        while not stop.is_set():
            with link.pacer.condition:  # receive + acknowledge as one step, like a link-layer ack
                if radio.connected and received[0] < len(radio.sent):
                    report = radio.sent[received[0]]
                    host_has.append(report)
                    link.pacer.delivered("AA:BB:CC:DD:EE:FF", report)
                    received[0] += 1
            time.sleep(0.0002)

    # Daemon threads, stopped in any case: a failing assertion must fail the test, not leave the host thread
    # running so that pytest never exits (a mutation run hung on exactly that).
    threads = [threading.Thread(target=slow_host, daemon=True), threading.Thread(target=drop_then_restore, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        keyboard = Keyboard(link, US, host_wait_s=10)
        keyboard.type(text)
        assert link.drain(5)
    finally:
        stop.set()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive(), f"{thread.name} still runs"
    assert dropped.is_set()
    assert decode(host_has, US) == text
    assert link.pacer.replayed_reports > 0


def test_after_the_controller_reports_a_drop_nothing_is_written_until_the_host_arrives_again() -> None:
    """The HCI monitor sees the drop ~1 s before BlueZ's D-Bus says Connected=False; in the guest,
    all eight lost reports were replayed into that second and BlueZ discarded them silently."""
    radio = FakeRadio()
    link = BluetoothLink(radio, window=8)  # type: ignore[arg-type]
    reports = encode("ab", US)
    for report in reports[:3]:
        link.send(report, deadline=None)
    link.pacer.lost("AA:BB:CC:DD:EE:FF")  # the controller's word; radio.ready_host() still says connected
    with pytest.raises(HostUnavailableError, match="no bonded Bluetooth host"):
        link.send(reports[3], deadline=time.monotonic() + 0.2)
    assert radio.sent == reports[:3]
    radio.host_back()
    link.send(reports[3], deadline=time.monotonic() + 1)
    assert radio.sent == reports[:3] + reports[:4]


def test_eject_is_a_consumer_press_and_release_paced_and_replayed_like_keys() -> None:
    radio = FakeRadio()
    link = BluetoothLink(radio, window=2)  # type: ignore[arg-type]
    press, release = consumer_report(CONSUMER_EJECT), bytes(2)
    link.send_consumer(CONSUMER_EJECT, deadline=None)
    assert radio.sent == [press, release]
    with pytest.raises(HostUnavailableError, match="stopped acknowledging"):
        link.send(RELEASE_ALL, deadline=time.monotonic() + 0.2)  # the window counts media keys too
    link.pacer.delivered(None, press)
    radio.connected = False
    link.pacer.lost("AA:BB:CC:DD:EE:FF")  # the release was in flight
    radio.host_back()
    link.send(RELEASE_ALL, deadline=time.monotonic() + 1)
    assert radio.sent == [press, release, release, RELEASE_ALL]  # the release replayed, as a consumer report


def test_eject_to_a_host_that_did_not_subscribe_to_media_keys_is_an_error_and_holds_nothing() -> None:
    radio = FakeRadio()
    radio.consumer_subscribed = False
    link = BluetoothLink(radio, window=2)  # type: ignore[arg-type]
    with pytest.raises(TransportError, match="did not subscribe to media keys"):
        link.send_consumer(CONSUMER_EJECT, deadline=None)
    assert radio.sent == []
    link.send(RELEASE_ALL, deadline=time.monotonic() + 0.2)
    assert radio.sent == [RELEASE_ALL]


def test_led_state_comes_from_the_hosts_output_report() -> None:
    radio = FakeRadio()
    radio.leds = 0x02
    assert BluetoothLink(radio).led_state() == 0x02  # type: ignore[arg-type]


def test_pacer_ignores_other_hosts_and_out_of_order_values() -> None:
    pacer = ReportPacer(window=4)
    pacer.host_address = "AA:BB:CC:DD:EE:FF"
    pacer.outstanding.extend([b"a", b"b"])
    pacer.delivered("11:22:33:44:55:66", b"a")
    pacer.delivered("AA:BB:CC:DD:EE:FF", b"b")
    assert list(pacer.outstanding) == [b"a", b"b"]
    pacer.delivered("aa:bb:cc:dd:ee:ff", b"a")
    assert list(pacer.outstanding) == [b"b"]
    pacer.lost("11:22:33:44:55:66")
    assert list(pacer.replay) == []


def test_pacer_counts_each_acknowledged_report_once_from_its_host_or_an_unknown_link() -> None:
    """None is a connection made before the monitor started; before the first key no host address is known."""
    pacer = ReportPacer(window=4)
    pacer.delivered(None, b"nothing in flight")  # an acknowledgement for nothing we wrote: no error, no count
    pacer.outstanding.extend([b"a", b"b", b"c"])
    pacer.delivered("11:22:33:44:55:66", b"a")  # any host counts while none is known
    pacer.host_address = "AA:BB:CC:DD:EE:FF"
    pacer.delivered(None, b"b")
    pacer.delivered("11:22:33:44:55:66", b"c")
    assert (list(pacer.outstanding), pacer.delivered_reports) == ([b"c"], 2)


def test_a_drop_puts_the_reports_in_flight_before_those_still_waiting_from_an_earlier_drop() -> None:
    """Replaying after a first drop, the link drops again: what was in flight was older than what still waits."""
    pacer = ReportPacer(window=4)
    pacer.host_address = "AA:BB:CC:DD:EE:FF"
    pacer.replay.extend([b"r3", b"r4"])
    pacer.outstanding.extend([b"r1", b"r2"])
    before = time.monotonic()
    pacer.lost("aa:bb:cc:dd:ee:ff")
    assert list(pacer.replay) == [b"r1", b"r2", b"r3", b"r4"] and not pacer.outstanding
    assert before <= pacer.lost_at <= time.monotonic(), "the link waits for a connection newer than this"
    pacer.lost(None)  # a loss with nothing in flight changes no order
    assert list(pacer.replay) == [b"r1", b"r2", b"r3", b"r4"]


@pytest.mark.parametrize("event", ["delivered", "lost"])
def test_the_pacer_wakes_a_writer_waiting_for_room_as_soon_as_the_host_answers(event: str) -> None:
    pacer = ReportPacer(window=1)
    pacer.outstanding.append(b"a")
    waiting, woken = threading.Event(), []

    def writer() -> None:
        with pacer.condition:
            waiting.set()
            woken.append(pacer.condition.wait(10))  # False only if nobody notified

    thread = threading.Thread(target=writer)
    thread.start()
    assert waiting.wait(10)
    if event == "delivered":
        pacer.delivered(None, b"a")
    else:
        pacer.lost(None)
    thread.join(15)
    assert woken == [True]


def test_release_all_lifts_a_held_key_once_and_only_to_a_host_that_is_there() -> None:
    radio = FakeRadio()
    link = BluetoothLink(radio, window=8)  # type: ignore[arg-type]
    press = encode("a", US)[0]
    link.release_all()
    link.release_all()
    assert radio.sent == [RELEASE_ALL], "a new link does not know what the host holds: it lets go once"
    link.send(press, deadline=None)
    link.release_all()
    link.release_all()
    assert radio.sent == [RELEASE_ALL, press, RELEASE_ALL], "one release, not one per call"
    link.send(press, deadline=None)
    radio.connected = False
    link.release_all()  # no host: the host's own disconnect released the key
    assert radio.sent == [RELEASE_ALL, press, RELEASE_ALL, press]
    radio.host_back()
    link.pacer.lost("AA:BB:CC:DD:EE:FF")  # the controller saw this connection drop already
    link.release_all()
    assert radio.sent == [RELEASE_ALL, press, RELEASE_ALL, press]


def test_release_all_is_best_effort_when_the_radio_fails() -> None:
    radio = FakeRadio()
    link = BluetoothLink(radio, window=8)  # type: ignore[arg-type]
    link.send(encode("a", US)[0], deadline=None)

    def fail(report: bytes) -> None:
        raise BluetoothError("BlueZ went away")

    radio.notify_input = fail  # type: ignore[method-assign]
    link.release_all()  # does not raise: it runs while closing, after errors


def test_drain_says_whether_the_host_acknowledged_everything_in_time_and_replays_first() -> None:
    radio = FakeRadio()
    link = BluetoothLink(radio, window=8)  # type: ignore[arg-type]
    reports = encode("ab", US)
    for report in reports:
        link.send(report, deadline=None)
    assert link.drain(0.1) is False
    for report in reports[:3]:
        link.pacer.delivered(None, report)
    radio.connected = False
    link.pacer.lost(None)
    assert link.drain(0.1) is False, "the lost report waits for a host"
    radio.host_back()

    def acknowledge() -> None:
        while not radio.sent[4:]:
            time.sleep(0.01)
        link.pacer.delivered(None, radio.sent[4])

    helper = threading.Thread(target=acknowledge, daemon=True)
    helper.start()
    assert link.drain(5) is True
    helper.join(5)
    assert radio.sent == [*reports, reports[3]], "drain wrote the lost report again"


def test_close_waits_for_acknowledgements_and_stops_only_a_keyboard_it_owns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from voxkey.transports.bluetooth import link as link_module

    monkeypatch.setattr(link_module, "CLOSE_DRAIN_S", 0.1)
    closed: list[bool] = []
    radio = FakeRadio()
    radio.close = lambda: closed.append(True)  # type: ignore[method-assign]
    borrowed = BluetoothLink(radio, window=8)  # type: ignore[arg-type]
    borrowed.send(RELEASE_ALL, deadline=None)
    borrowed.close()
    assert closed == []
    assert "1 key reports not acknowledged by the host at close" in caplog.text
    owner = BluetoothLink(radio, window=8, owns_peripheral=True)  # type: ignore[arg-type]
    caplog.clear()
    owner.close()
    assert closed == [True] and "not acknowledged" not in caplog.text


def test_the_connection_interval_is_the_current_host_s_as_its_controller_reported_it() -> None:
    radio = FakeRadio()
    link = BluetoothLink(radio, window=8)  # type: ignore[arg-type]
    assert link.connection_interval_ms() is None, "no delivery tracking"
    link._ledger = DeliveryLedger(lambda a, v: None, lambda a, v: None)
    assert link.connection_interval_ms() is None, "no host yet"
    link._ledger.intervals_ms["AA:BB:CC:DD:EE:FF"] = 30.0
    link.pacer.host_address = "aa:bb:cc:dd:ee:ff"
    assert link.connection_interval_ms() == 30.0


def test_an_acknowledgement_out_of_order_never_frees_the_report_waiting_at_the_head() -> None:
    pacer = ReportPacer(window=4)
    pacer.outstanding.extend([b"\x05", b"\x01"])
    pacer.delivered(None, b"\x01")  # sorts before the head: still not the head
    pacer.delivered(None, b"\x09")  # sorts after it
    assert list(pacer.outstanding) == [b"\x05", b"\x01"] and pacer.delivered_reports == 0


def test_a_writer_waits_for_room_until_its_deadline_not_less() -> None:
    """The host acknowledges 0.1 s into a 0.9 s deadline: the key goes out instead of an error."""
    radio = FakeRadio()
    link = BluetoothLink(radio, window=1)  # type: ignore[arg-type]
    link.send(encode("a", US)[0], deadline=None)

    def acknowledge() -> None:
        time.sleep(0.1)
        link.pacer.delivered(None, radio.sent[0])

    helper = threading.Thread(target=acknowledge, daemon=True)
    helper.start()
    link.send(RELEASE_ALL, deadline=time.monotonic() + 0.9)
    helper.join(5)
    assert radio.sent[-1] == RELEASE_ALL


# ----------------------------------------------------------------------------- command line


def test_type_takes_the_bluetooth_transport_and_its_options() -> None:
    from voxkey.cli import build_parser

    args = build_parser(("keyboard",)).parse_args(
        ["type", "hi", "--transport", "bluetooth", "--adapter", "hci1", "--name", "desk", "--pair", "--window", "4"]
    )
    assert (args.transport, args.adapter, args.name, args.pair, args.window) == ("bluetooth", "hci1", "desk", True, 4)


def test_typing_over_usb_does_not_load_the_bluetooth_stack() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from voxkey.cli import build_parser; build_parser(('keyboard',)).parse_args(['type', 'x']); "
        "print(sorted(m for m in sys.modules if m.startswith(('dbus_fast', 'voxkey.transports.bluetooth')) "
        "and m not in ('voxkey.transports.bluetooth', 'voxkey.transports.bluetooth.settings')))"
    )  # the package's __init__ is lazy and settings.py light: a config reads BluetoothSettings
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_bluetooth_typing_without_a_usable_bluez_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    """This machine (and CI) has no Bluetooth controller or system bus: the user gets one actionable line."""
    from voxkey.cli import main

    assert main(["type", "hi", "--transport", "bluetooth", "--wait", "1"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("voxkey: error: ") and err.count("\n") == 1, err


def test_eject_from_the_command_line_needs_the_bluetooth_transport(capsys: pytest.CaptureFixture[str]) -> None:
    from voxkey.cli import main

    assert main(["type", "hi", "--transport", "terminal", "--eject"]) != 0
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing typed: the whole command is refused
    assert "--eject needs --transport bluetooth" in captured.err and captured.err.count("\n") == 1


def test_the_host_pairing_now_may_read_before_its_bond_is_reported_but_only_in_pairing_mode() -> None:
    from voxkey.transports.bluetooth.peripheral import BluetoothPeripheral

    peripheral = BluetoothPeripheral(BluetoothSettings(name="t"))
    path = "/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF"
    peripheral.devices[path] = DeviceView(path, address="AA:BB:CC:DD:EE:FF", connected=True)
    assert not peripheral.host_allowed(path)
    peripheral.pairing_mode.active = True
    assert peripheral.host_allowed(path)
    assert not peripheral.host_allowed("/org/bluez/hci0/dev_11_22_33_44_55_66")
    peripheral.pairing_mode.active = False
    peripheral.devices[path].update({"Paired": True, "Bonded": True, "Trusted": True})
    assert peripheral.host_allowed(path)


def test_first_key_waits_until_the_host_that_just_subscribed_has_settled() -> None:
    radio = FakeRadio()
    radio.settings = BluetoothSettings(report_window=3, host_settle_s=0.3)
    link = BluetoothLink(radio, window=3)  # type: ignore[arg-type]
    radio.host_arrived_at = time.monotonic()
    started = time.monotonic()
    link.send(RELEASE_ALL, deadline=time.monotonic() + 5)
    assert time.monotonic() - started >= 0.3
    link.pacer.delivered(None, RELEASE_ALL)
    link.send(RELEASE_ALL, deadline=time.monotonic() - 1)  # a settled host is not made to wait: no deadline check
    radio.host_arrived_at = time.monotonic()
    with pytest.raises(HostUnavailableError, match="did not settle"):
        link.send(RELEASE_ALL, deadline=time.monotonic() + 0.1)


def test_a_host_is_ready_only_once_its_att_bearer_is_up_and_then_settles_again() -> None:
    """Connected comes with the bare link; a reconnecting host keeps its subscription, so no StartNotify marks it."""
    from dbus_fast import Message, MessageType

    from voxkey.transports.bluetooth.peripheral import BluetoothPeripheral

    peripheral = BluetoothPeripheral(BluetoothSettings(name="t"))
    peripheral.session.owner = ":1.4"  # registered with that bluetoothd
    peripheral.app.keyboard_input.notifying = True
    path = "/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF"
    peripheral.devices[path] = DeviceView(path, address="AA:BB:CC:DD:EE:FF", paired=True, trusted=True)

    def changed(**props: object) -> None:
        body = [bluez.DEVICE, {key: Variant("b", value) for key, value in props.items()}, []]
        message = Message(
            message_type=MessageType.SIGNAL,
            path=path,
            interface=bluez.PROPERTIES,
            member="PropertiesChanged",
            signature="sa{sv}as",
            body=body,
        )
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(peripheral, "_spawn", lambda coroutine: coroutine.close())
            peripheral.mirror.on_message(message)

    changed(Connected=True)
    assert peripheral.ready_host() is None
    before = time.monotonic()
    changed(ServicesResolved=True)
    host = peripheral.ready_host()
    assert host is not None and host.address == "AA:BB:CC:DD:EE:FF"
    assert peripheral.host_arrived_at >= before


def test_the_advertisement_is_registered_again_when_the_radio_comes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found in the guest: after an rfkill block BlueZ refused the advertisement, and without one the bonded
    host never found voxkey again once the radio was back on."""
    import asyncio

    from dbus_fast import Message, MessageType

    from voxkey.transports.bluetooth import peripheral as module

    radio_on = [True]
    calls: list[str] = []

    async def bluez_call(
        bus: object, path: str, interface: str, member: str, *args: object, **kw: object
    ) -> list[object]:
        calls.append(member)
        if member == "RegisterAdvertisement" and not radio_on[0]:
            raise DBusError("org.bluez.Error.Failed", "Failed to register advertisement")
        return []

    class Bus:
        def export(self, path: str, interface: object) -> None: ...
        def unexport(self, path: str, interface: object) -> None: ...

    monkeypatch.setattr(module.bluez, "call", bluez_call)
    peripheral = module.BluetoothPeripheral(BluetoothSettings(name="t"))
    peripheral.session.bus = Bus()  # type: ignore[assignment]
    peripheral.session.owner = ":1.4"  # registered with that bluetoothd
    peripheral.session.powered = True

    def adapter_powered(powered: bool) -> list[object]:
        spawned: list[object] = []
        message = Message(
            message_type=MessageType.SIGNAL,
            path="/org/bluez/hci0",
            interface=bluez.PROPERTIES,
            member="PropertiesChanged",
            signature="sa{sv}as",
            body=[bluez.ADAPTER, {"Powered": Variant("b", powered)}, []],
        )
        monkeypatch.setattr(peripheral, "_spawn", spawned.append)
        radio_on[0] = powered
        peripheral.mirror.on_message(message)
        return spawned

    async def scenario() -> None:
        await peripheral.enforcer.evaluate()  # no host connected: advertise for bonded hosts
        assert calls == ["RegisterAdvertisement"]
        for coroutine in adapter_powered(False):
            await coroutine  # type: ignore[misc]
        assert calls == ["RegisterAdvertisement", "UnregisterAdvertisement"]  # nothing asked of a radio that is off
        assert peripheral.state == BluetoothState.WAITING_FOR_HOST
        for coroutine in adapter_powered(True):
            await coroutine  # type: ignore[misc]
        assert calls == ["RegisterAdvertisement", "UnregisterAdvertisement", "RegisterAdvertisement"]

    asyncio.run(scenario())


# ----------------------------------------------------------------------------- hosts whose hog drops 0x23

DEBIAN_12_HOST = "usb:v1D6Bp0246d0542"  # BlueZ 5.66, as bluetoothd's default DeviceID shows it


@pytest.mark.parametrize(
    ("modalias", "version", "affected"),
    [
        (DEBIAN_12_HOST, (5, 66), True),
        ("usb:v1D6Bp0246d0540", (5, 64), True),  # Ubuntu 22.04
        ("usb:v1D6Bp0246d0537", (5, 55), True),  # the first client asking for multiple notifications
        ("bluetooth:v1D6Bp0246d0542", (5, 66), True),
        ("usb:v1D6Bp0246d0536", (5, 54), False),
        ("usb:v1D6Bp0246d0543", (5, 67), False),  # hog fixed
        ("usb:v1D6Bp0246d0552", (5, 82), False),
        ("bluetooth:v004Cp0267d0100", None, False),  # not BlueZ (Apple)
        ("usb:v1D6Bp0104d0542", None, False),  # Linux Foundation, another product (voxkey's own gadget)
        ("", None, False),
        ("garbage", None, False),
    ],
)
def test_bluez_hosts_5_55_to_5_66_are_known_to_type_nothing(
    modalias: str, version: tuple[int, int] | None, affected: bool
) -> None:
    from voxkey.transports.bluetooth.hostcompat import bluez_version, host_problem

    assert bluez_version(modalias) == version
    problem = host_problem(modalias)
    assert (problem is not None) == affected
    if problem:
        assert f"BlueZ {version[0]}.{version[1]}" in problem and "5.67" in problem  # type: ignore[index]


@pytest.fixture(autouse=True)
def packaged_bluetoothd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine's own systemd drop-ins must not decide whether old BlueZ hosts are refused."""
    from voxkey.transports.bluetooth import hostcompat

    monkeypatch.setattr(hostcompat, "SINGLE_NOTIFICATIONS_DROPIN", tmp_path / "no-dropin.conf")


def write_dropin(directory: Path, *exec_lines: str) -> Path:
    dropin = directory / "voxkey-bluetoothd.conf"
    dropin.write_text("[Service]\n" + "".join(f"ExecStart={line}\n" for line in exec_lines))
    return dropin


def test_a_pi_running_the_single_notification_bluetoothd_types_to_old_bluez_hosts(tmp_path: Path) -> None:
    """install.sh --bluetoothd-for-old-hosts: systemd runs the patched daemon its drop-in names."""
    from voxkey.transports.bluetooth.hostcompat import host_problem, single_notifications_bluetoothd

    patched = tmp_path / "bluetoothd"
    patched.write_bytes(b"\x7fELF")
    dropin = write_dropin(tmp_path, "", f"{patched} -E")
    assert single_notifications_bluetoothd(dropin) == patched
    assert host_problem(DEBIAN_12_HOST, dropin) is None
    assert host_problem(DEBIAN_12_HOST) is not None  # no drop-in: the packaged daemon sends 0x23


@pytest.mark.parametrize(
    "exec_lines",
    [(), ("",), ("/nonexistent/voxkey/bluetoothd",)],
    ids=["no-exec-start", "exec-start-only-reset", "binary-gone"],
)
def test_a_dropin_that_runs_no_patched_bluetoothd_still_refuses_old_hosts(
    tmp_path: Path, exec_lines: tuple[str, ...]
) -> None:
    from voxkey.transports.bluetooth.hostcompat import host_problem, single_notifications_bluetoothd

    dropin = write_dropin(tmp_path, *exec_lines)
    assert single_notifications_bluetoothd(dropin) is None
    problem = host_problem(DEBIAN_12_HOST, dropin)
    assert problem is not None and "--bluetoothd-for-old-hosts" in problem


def test_typing_to_a_bluez_5_66_host_fails_at_once_and_delivers_nothing() -> None:
    radio = FakeRadio()
    radio.modalias = DEBIAN_12_HOST
    link = BluetoothLink(radio, window=3)  # type: ignore[arg-type]
    keyboard = Keyboard(link, US, host_wait_s=5)
    with pytest.raises(TransportError, match=r"AA:BB:CC:DD:EE:FF: the host runs BlueZ 5\.66"):
        keyboard.type("hello")
    assert radio.sent == [] and keyboard.delivered_chars == 0


def test_with_the_rebuilt_bluetoothd_a_5_66_host_is_typed_to_unless_multiple_notifications_went_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drop-in says the rebuilt bluetoothd runs; the HCI monitor's count of 0x23 PDUs says what it did."""
    from voxkey.transports.bluetooth import hostcompat

    patched = tmp_path / "bluetoothd"
    patched.write_bytes(b"\x7fELF")
    monkeypatch.setattr(hostcompat, "SINGLE_NOTIFICATIONS_DROPIN", write_dropin(tmp_path, "", str(patched)))
    radio = FakeRadio()
    radio.modalias = DEBIAN_12_HOST
    link = BluetoothLink(radio, window=64)  # type: ignore[arg-type]  # no acks needed for a few keys
    link._ledger = DeliveryLedger(lambda a, v: None, lambda a, v: None)
    link._ledger.notification_pdus["AA:BB:CC:DD:EE:FF"] = {"single": 4, "multiple": 0}
    keyboard = Keyboard(link, US, host_wait_s=5)
    keyboard.type("hi")
    assert decode(radio.sent, US) == "hi"
    link._ledger.notification_pdus["AA:BB:CC:DD:EE:FF"]["multiple"] = 1  # a bluetoothd not restarted batched
    with pytest.raises(TransportError, match=r"1 Multiple Handle Value Notifications .* BlueZ 5\.66 drops"):
        keyboard.type("more")


def test_a_host_found_to_be_bluez_5_66_mid_text_or_after_it_is_an_error_not_delivered() -> None:
    radio = FakeRadio()
    link = BluetoothLink(radio, window=8)  # type: ignore[arg-type]
    reports = encode("ab", US)
    link.send(reports[0], deadline=None)
    radio.modalias = DEBIAN_12_HOST  # bluetoothd read the host's PnP ID only now
    with pytest.raises(TransportError, match=r"BlueZ 5\.66"):
        link.send(reports[1], deadline=None)
    link.pacer.delivered(None, reports[0])
    with pytest.raises(TransportError, match=r"BlueZ 5\.66"):
        link.drain(1.0)
    radio.modalias = ""
    assert link.drain(1.0)


def test_the_peripheral_logs_an_unusable_host_once_per_connection(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio
    import logging

    from voxkey.transports.bluetooth import peripheral as module

    async def bluez_call(*args: object, **kw: object) -> list[object]:
        return []

    class Bus:
        def export(self, path: str, interface: object) -> None: ...
        def unexport(self, path: str, interface: object) -> None: ...

    monkeypatch.setattr(module.bluez, "call", bluez_call)
    peripheral = module.BluetoothPeripheral(BluetoothSettings(name="t"))
    peripheral.session.bus = Bus()  # type: ignore[assignment]
    peripheral.session.owner = ":1.4"  # registered with that bluetoothd
    peripheral.session.powered = True
    path = "/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF"
    host = DeviceView(path, address="AA:BB:CC:DD:EE:FF", name="laptop", connected=True, paired=True, trusted=True)
    peripheral.devices[path] = host
    caplog.set_level(logging.ERROR, logger="voxkey.transports.bluetooth.mirror")

    def unusable_lines() -> int:
        return sum("AA:BB:CC:DD:EE:FF (laptop): the host runs BlueZ 5.66" in r.getMessage() for r in caplog.records)

    asyncio.run(peripheral.enforcer.evaluate_locked())
    assert unusable_lines() == 0
    host.update({"Modalias": DEBIAN_12_HOST})
    asyncio.run(peripheral.enforcer.evaluate_locked())
    asyncio.run(peripheral.enforcer.evaluate_locked())
    assert unusable_lines() == 1
    host.update({"Connected": False})
    asyncio.run(peripheral.enforcer.evaluate_locked())
    host.update({"Connected": True})
    asyncio.run(peripheral.enforcer.evaluate_locked())
    assert unusable_lines() == 2


def test_doctor_names_a_bonded_host_whose_bluez_types_nothing(tmp_path: object) -> None:
    from voxkey.config import Config, OutputSettings
    from voxkey.doctor import Doctor
    from voxkey.transports.bluetooth.hostcompat import host_problem
    from voxkey.transports.bluetooth.hosts import BondedHost

    config = Config(output=OutputSettings(transport="bluetooth"))
    good = BondedHost("11:22:33:44:55:66", "phone", True, True, False)
    bad = BondedHost("AA:BB:CC:DD:EE:FF", "laptop", False, True, False, host_problem(DEBIAN_12_HOST))
    asked: list[str] = []

    def hosts(*found: BondedHost) -> object:
        def listing(adapter: str) -> list[BondedHost]:
            asked.append(adapter)
            return list(found)

        return listing

    result = Doctor(config, bluetooth_hosts=hosts(good, bad)).check_bluetooth_hosts()  # type: ignore[arg-type]
    assert not result.ok and "AA:BB:CC:DD:EE:FF (laptop)" in result.detail and "BlueZ 5.66" in result.detail
    assert "11:22" not in result.detail and result.fix
    assert Doctor(config, bluetooth_hosts=hosts(good)).check_bluetooth_hosts().ok  # type: ignore[arg-type]
    assert asked == ["hci0", "hci0"]

    def no_bluez(adapter: str) -> list[BondedHost]:
        raise BluetoothError("cannot reach the system D-Bus")

    down = Doctor(config, bluetooth_hosts=no_bluez).check_bluetooth_hosts()
    assert not down.ok and "systemctl start bluetooth" in down.fix
    usb = Doctor(Config(output=OutputSettings(transport="usb")), bluetooth_hosts=no_bluez).check_bluetooth_hosts()
    assert usb.ok and not usb.used


DPKG_STATUS = """Package: bluez
Status: install ok installed
Version: {version}

Package: bluez-obexd
Status: deinstall ok config-files
Version: 9.9
"""


def test_doctor_says_when_the_bluetoothd_for_old_hosts_is_older_than_the_installed_bluez(tmp_path: Path) -> None:
    """An upgrade of the bluez package leaves the rebuilt daemon behind until install.sh runs again."""
    from voxkey.config import Config, OutputSettings
    from voxkey.doctor import Doctor
    from voxkey.doctor.base import SystemPaths

    binary = tmp_path / "bluetoothd"
    binary.write_bytes(b"\x7fELF")
    (tmp_path / "bluetoothd.built-from").write_text("bluez 5.66-1+deb12u2; patches: 0123456789abcdef\n")
    dropin = write_dropin(tmp_path, "", str(binary))
    status = tmp_path / "status"
    config = Config(output=OutputSettings(transport="bluetooth"))

    def check(version: str, the_dropin: Path = dropin) -> object:
        status.write_text(DPKG_STATUS.format(version=version))
        paths = SystemPaths(bluetoothd_dropin=the_dropin, dpkg_status=status)
        return Doctor(config, paths=paths).check_old_hosts_bluetoothd()

    current = check("5.66-1+deb12u2")
    assert current.ok and current.used and "5.66-1+deb12u2" in current.detail  # type: ignore[attr-defined]
    stale = check("5.66-1+deb12u3")
    assert not stale.ok and "5.66-1+deb12u3" in stale.detail  # type: ignore[attr-defined]
    assert stale.fix == "sudo ./install.sh --bluetoothd-for-old-hosts"  # type: ignore[attr-defined]
    absent = check("5.66-1+deb12u3", tmp_path / "none.conf")
    assert absent.ok and not absent.used  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- pairing a host aborts


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_pairing_window_counts_down_on_its_clock_and_survives_a_failed_attempt() -> None:
    from voxkey.transports.bluetooth.pairing import PairingWindow

    clock = FakeClock()
    window = PairingWindow(120, clock)
    clock.now += 30
    message = window.attempt_failed("AA:BB:CC:DD:EE:FF", "it cancelled")
    assert "stays on for 90 s more" in message and "pair again" in message
    assert not window.expired and window.failed_attempts == ["AA:BB:CC:DD:EE:FF"]
    clock.now += 89.5
    assert not window.expired
    clock.now += 0.5
    assert window.expired and window.remaining_s() == 0


class PairingHarness:
    """A peripheral on a test event loop with BlueZ's calls recorded and a fake clock."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from voxkey.transports.bluetooth import peripheral as module

        self.calls: list[tuple[str, str, object]] = []

        async def bluez_call(
            bus: object, path: str, interface: str, member: str, *args: object, **kw: object
        ) -> list[object]:
            self.calls.append((member, path, args))
            return []

        async def set_property(bus: object, path: str, interface: str, name: str, value: Variant) -> None:
            self.calls.append((name, path, value.value))

        class Bus:
            def export(self, path: str, interface: object) -> None: ...
            def unexport(self, path: str, interface: object) -> None: ...

        monkeypatch.setattr(module.bluez, "call", bluez_call)
        monkeypatch.setattr(module.bluez, "set_property", set_property)
        self.clock = FakeClock()
        self.peripheral = module.BluetoothPeripheral(BluetoothSettings(name="t"), clock=self.clock)
        self.peripheral.session.bus = Bus()  # type: ignore[assignment]
        self.peripheral.session.owner = ":1.4"  # registered with that bluetoothd
        self.peripheral.session.powered = True
        self.path = "/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF"
        self.host = DeviceView(self.path, address="AA:BB:CC:DD:EE:FF")
        self.peripheral.devices[self.path] = self.host

    def host_says(self, **props: object) -> None:
        from dbus_fast import Message, MessageType

        body = [bluez.DEVICE, {key: Variant("b", value) for key, value in props.items()}, []]
        self.peripheral.mirror.on_message(
            Message(
                message_type=MessageType.SIGNAL,
                path=self.path,
                interface=bluez.PROPERTIES,
                member="PropertiesChanged",
                signature="sa{sv}as",
                body=body,
            )
        )


async def _settle() -> None:
    import asyncio

    for _ in range(20):
        await asyncio.sleep(0)


def test_an_aborted_pairing_keeps_the_window_open_and_the_hosts_retry_bonds(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio
    import logging

    harness = PairingHarness(monkeypatch)
    peripheral = harness.peripheral
    caplog.set_level(logging.WARNING)

    async def scenario() -> str | None:
        peripheral.runner.loop = asyncio.get_running_loop()
        pairing = asyncio.ensure_future(peripheral._start_pairing(120))
        await _settle()
        assert peripheral.pairing and peripheral.state == BluetoothState.PAIRING
        harness.host_says(Connected=True)
        await _settle()
        harness.clock.now += 20
        peripheral.agent.Cancel()  # the host's user pressed Cancel, or its stack gave up ("Not paired")
        harness.host_says(Connected=False)
        await _settle()
        assert peripheral.pairing and peripheral.state == BluetoothState.PAIRING, "the window must stay open"
        assert ("Pairable", peripheral.adapter_path, False) not in harness.calls
        harness.clock.now += 10
        harness.host_says(Connected=True)  # the retry
        harness.host_says(Paired=True, Bonded=True)
        return await asyncio.wait_for(pairing, 5)

    assert asyncio.run(scenario()) == "AA:BB:CC:DD:EE:FF"
    assert not peripheral.pairing and harness.host.trusted
    assert peripheral.pairing_window is not None and len(peripheral.pairing_window.failed_attempts) == 2
    warnings = [r.getMessage() for r in caplog.records if "pairing mode stays on for 100 s more" in r.getMessage()]
    assert len(warnings) == 2, [r.getMessage() for r in caplog.records]


def test_the_pairing_window_closes_at_its_timeout_and_drops_a_host_that_did_not_bond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    harness = PairingHarness(monkeypatch)
    peripheral = harness.peripheral

    async def scenario() -> str | None:
        peripheral.runner.loop = asyncio.get_running_loop()
        pairing = asyncio.ensure_future(peripheral._start_pairing(120))
        await _settle()
        harness.host_says(Connected=True)
        await _settle()
        harness.clock.now += 119
        peripheral.pairing_mode.deadline()  # a timer that fires early (another clock) changes nothing
        await _settle()
        assert peripheral.pairing
        assert not any(member == "Disconnect" for member, _, _ in harness.calls)
        harness.clock.now += 1
        peripheral.pairing_mode.deadline()
        return await asyncio.wait_for(pairing, 5)

    assert asyncio.run(scenario()) is None
    assert not peripheral.pairing and peripheral.state == BluetoothState.WAITING_FOR_HOST
    assert ("Pairable", peripheral.adapter_path, False) in harness.calls
    assert ("Disconnect", harness.path, ()) in harness.calls, "a host still connected without a bond must go"


# ----------------------------------------------------------------------------- connection interval


def test_the_ledger_records_the_interval_the_host_granted_at_connection_and_after_an_update(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    ledger = DeliveryLedger(lambda address, value: None, lambda address, values: None)
    caplog.set_level(logging.INFO)
    address = bytes([0x66, 0x55, 0x44, 0x33, 0x22, 0x11])
    connection = bytearray(le_connection(0x0040, address))
    connection[2 + 12 : 2 + 14] = struct.pack("<H", 36)  # 45 ms, Android's default
    feed(ledger, MONITOR_EVENT, bytes(connection))
    assert ledger.intervals_ms == {"11:22:33:44:55:66": 45.0}
    update = bytes([0x03, 0x00]) + struct.pack("<HHHH", 0x0040, 6, 0, 200)  # granted 7.5 ms
    feed(ledger, MONITOR_EVENT, bytes([0x3E, len(update)]) + update)
    assert ledger.intervals_ms == {"11:22:33:44:55:66": 7.5}
    failed = bytes([0x03, 0x3B]) + struct.pack("<HHHH", 0x0040, 80, 0, 200)  # refused: nothing changes
    feed(ledger, MONITOR_EVENT, bytes([0x3E, len(failed)]) + failed)
    assert ledger.intervals_ms == {"11:22:33:44:55:66": 7.5}
    enhanced = bytes([0x0A, 0x00]) + struct.pack("<H", 0x0041) + bytes([0x01, 0x00]) + address[::-1] + bytes(12)
    enhanced += struct.pack("<HHHB", 12, 0, 200, 0)
    feed(ledger, MONITOR_EVENT, bytes([0x3E, len(enhanced)]) + enhanced)
    assert ledger.intervals_ms == {"66:55:44:33:22:11": 15.0, "11:22:33:44:55:66": 7.5}
    assert "link to 11:22:33:44:55:66: connection interval 7.50 ms" in caplog.text


def test_hosts_list_warns_about_a_host_that_types_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from voxkey import transports
    from voxkey.cli import main
    from voxkey.transports.bluetooth.hostcompat import host_problem
    from voxkey.transports.bluetooth.hosts import BondedHost

    hosts = [
        BondedHost("AA:BB:CC:DD:EE:FF", "laptop", False, True, False, host_problem(DEBIAN_12_HOST)),
        BondedHost("11:22:33:44:55:66", "phone", True, True, False),
    ]
    monkeypatch.setattr(transports.bluetooth, "list_hosts", lambda adapter, preferred: hosts)
    assert main(["hosts", "list"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["AA:BB:CC:DD:EE:FF\tlaptop", "11:22:33:44:55:66\tphone\tconnected"]
    assert err.count("\n") == 1 and err.startswith("voxkey: AA:BB:CC:DD:EE:FF: the host runs BlueZ 5.66")


def test_the_first_key_waits_for_the_hosts_stack_to_be_known_so_a_5_66_host_gets_none() -> None:
    """bluetoothd reads the host's PnP ID a few seconds after the host subscribed (3.3 s in the guest)."""
    radio = FakeRadio()
    radio.modalias = ""
    link = BluetoothLink(radio, window=3, identity_wait_s=0.4)  # type: ignore[arg-type]
    radio.host_arrived_at = time.monotonic()

    def identify() -> None:
        time.sleep(0.1)
        radio.modalias = DEBIAN_12_HOST
        link._peripheral_changed()

    threading.Thread(target=identify).start()
    with pytest.raises(TransportError, match=r"BlueZ 5\.66"):
        link.send(RELEASE_ALL, deadline=time.monotonic() + 5)
    assert radio.sent == []
    radio.modalias = ""  # a host that never says: it waits out identity_wait_s once, then types
    started = time.monotonic()
    link.send(RELEASE_ALL, deadline=time.monotonic() + 5)
    assert radio.sent == [RELEASE_ALL] and time.monotonic() - started < 0.5


# ----------------------------------------------------------------------------- the keyboard's rules (policy)


def view(address: str, **props: bool) -> DeviceView:
    defaults = {"connected": True, "paired": True, "trusted": True, "services_resolved": True}
    return DeviceView(f"/d/{address}", address=address, **{**defaults, **props})  # type: ignore[arg-type]


HOST, OTHER, STRANGER = "AA:AA:AA:AA:AA:AA", "BB:BB:BB:BB:BB:BB", "CC:CC:CC:CC:CC:CC"


@pytest.mark.parametrize(
    ("devices", "pairing", "preferred", "expected"),
    [
        # nobody here: advertise for bonded hosts
        ([], False, None, dict(advertise=False, state=BluetoothState.WAITING_FOR_HOST)),
        # a bonded host typing: no advertising
        ([view(HOST)], False, None, dict(advertise=None, state=BluetoothState.CONNECTED, ready=HOST)),
        # connected but its services are not resolved yet: not ready
        ([view(HOST, services_resolved=False)], False, None, dict(advertise=None, ready=None)),
        # a stranger outside pairing mode goes; voxkey keeps advertising
        ([view(STRANGER, trusted=False)], False, None, dict(strangers=[STRANGER], advertise=False)),
        # pairing: discoverable, nobody is a stranger
        ([view(STRANGER, paired=False, trusted=False)], True, None, dict(advertise=True, state=BluetoothState.PAIRING)),
        # pairing and a host just paired: bond it, nothing else this round
        ([view(STRANGER, trusted=False), view(HOST)], True, None, dict(bond=STRANGER, advertise=None)),
        # the preferred host arrives: the other host makes way
        ([view(OTHER), view(HOST)], False, HOST, dict(displaced=[OTHER], advertise=None)),
        # another host while the preferred one is away: keep advertising for it
        ([view(OTHER)], False, HOST, dict(advertise=False, state=BluetoothState.CONNECTED, ready=OTHER)),
        # bonded but disconnected devices do not count
        ([view(HOST, connected=False)], False, None, dict(advertise=False, ready=None)),
    ],
)
def test_decide_applies_the_keyboards_rules(
    devices: list[DeviceView], pairing: bool, preferred: str | None, expected: dict[str, object]
) -> None:
    from voxkey.transports.bluetooth.policy import decide

    decision = decide(devices, pairing=pairing, powered=True, preferred=preferred, subscribed=True)
    got = {
        "bond": decision.bond.address if decision.bond else None,
        "strangers": [d.address for d in decision.strangers],
        "displaced": [d.address for d in decision.displaced],
        "advertise": decision.advertise,
        "state": decision.state,
        "ready": decision.ready.address if decision.ready else None,
    }
    assert {key: got[key] for key in expected} == expected


def test_decide_never_advertises_with_the_radio_off_and_nobody_is_ready_before_subscribing() -> None:
    from voxkey.transports.bluetooth.policy import decide

    assert decide([], pairing=True, powered=False, preferred=None, subscribed=True).advertise is None
    unsubscribed = decide([view(HOST)], pairing=False, powered=True, preferred=None, subscribed=False)
    assert unsubscribed.ready is None and unsubscribed.state == BluetoothState.WAITING_FOR_HOST


def test_hosts_lists_only_what_the_keyboard_accepts_as_a_bonded_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """One rule with the running keyboard: Trusted (set by voxkey when it bonded) is part of it."""
    import asyncio

    from voxkey.transports.bluetooth import hosts as module

    def device(address: str, **props: object) -> dict[str, dict[str, Variant]]:
        values = {"Address": address, "Paired": True, "Trusted": True, "Connected": False, **props}
        kinds = {bool: "b", str: "s"}
        return {bluez.DEVICE: {k: Variant(kinds[type(v)], v) for k, v in values.items()}}

    objects = {
        "/org/bluez/hci0/dev_1": device(HOST, Alias="laptop", Modalias=DEBIAN_12_HOST),
        "/org/bluez/hci0/dev_2": device(OTHER, Trusted=False),  # paired some other way: voxkey drops it
        "/org/bluez/hci0/dev_3": device(STRANGER, Bonded=False),  # BlueZ >= 5.67: paired without keys stored
        "/org/bluez/hci1/dev_4": device("DD:DD:DD:DD:DD:DD"),  # another adapter
    }

    class Bus:
        def disconnect(self) -> None: ...

    async def connect() -> Bus:
        return Bus()

    async def adapter_path(bus: object, adapter: str) -> str:
        return f"/org/bluez/{adapter}"

    async def managed(bus: object) -> dict[str, dict[str, dict[str, object]]]:
        return {
            path: {i: {k: bluez.plain(v) for k, v in p.items()} for i, p in ifs.items()}
            for path, ifs in objects.items()
        }

    monkeypatch.setattr(module.bluez, "connect_system_bus", connect)
    monkeypatch.setattr(module.bluez, "adapter_path", adapter_path)
    monkeypatch.setattr(module.bluez, "managed_objects", managed)
    listed = asyncio.run(module.list_hosts_async("hci0", preferred=HOST.lower()))
    assert [(h.address, h.name, h.preferred) for h in listed] == [(HOST, "laptop", True)]
    assert listed[0].problem is not None and "BlueZ 5.66" in listed[0].problem


# ----------------------------------------------------------------------------- the loop thread


def test_the_loop_thread_runs_coroutines_for_blocking_callers_and_stops_cleanly() -> None:
    import asyncio

    from voxkey.transports.bluetooth.loop_thread import LoopThread

    runner = LoopThread("test-loop")
    with pytest.raises(BluetoothError, match="not running"):
        runner.submit(asyncio.sleep(0))
    threads: list[str] = []

    async def boot() -> None:
        threads.append(threading.current_thread().name)

    runner.start(boot, timeout_s=10)
    assert runner.started and threads == ["test-loop"]

    async def double(value: int) -> int:
        return 2 * value

    assert runner.submit(double(21)).result(timeout=10) == 42
    done = threading.Event()
    runner.call_soon(lambda: (threads.append(threading.current_thread().name), done.set()))
    assert done.wait(10) and threads[-1] == "test-loop"
    stopped: list[bool] = []

    async def shutdown() -> None:
        stopped.append(True)

    runner.stop(shutdown, timeout_s=10)
    assert stopped == [True] and not runner.started and runner.loop is None
    runner.stop(shutdown, timeout_s=10)  # stopping twice is harmless
    assert stopped == [True]


def test_a_failing_boot_is_raised_to_the_caller() -> None:
    from voxkey.transports.bluetooth.loop_thread import LoopThread

    runner = LoopThread("test-loop")

    async def boot() -> None:
        raise BluetoothError("no adapter")

    async def shutdown() -> None:
        return None

    with pytest.raises(BluetoothError, match="no adapter"):
        runner.start(boot, timeout_s=10)
    runner.stop(shutdown, timeout_s=10)
    assert not runner.started


# ----------------------------------------------------------------------------- bluetoothd restarting


class RestartingBluez:
    """BlueZ's calls as the bus routes them while bluetoothd restarts: by unique name, and a dead one fails."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> None:
        self.running = ":1.4"
        self.calls: list[tuple[str, str]] = []
        """(member, the bluetoothd that got it) for each call that reached one."""
        self.refuse_registrations = 0
        """So many ``RegisterApplication`` calls fail first (the adapter not back yet)."""
        monkeypatch.setattr(module.bluez, "call", self.call)
        monkeypatch.setattr(module.bluez, "set_property", self.set_property)

    async def call(
        self, bus: object, path: str, interface: str, member: str, *args: object, destination: str = bluez.BLUEZ
    ) -> list[object]:
        if member == "GetNameOwner":
            return [self.running]
        if destination not in (bluez.BLUEZ, self.running):
            raise DBusError("org.freedesktop.DBus.Error.ServiceUnknown", f"The name {destination} was not provided")
        self.calls.append((member, self.running))
        if member == "GetManagedObjects":
            return [{"/org/bluez/hci0": {bluez.ADAPTER: {"Powered": Variant("b", True)}}}]
        if member == "RegisterApplication" and self.refuse_registrations > 0:
            self.refuse_registrations -= 1
            raise DBusError("org.bluez.Error.Failed", "Failed")
        return []

    async def set_property(self, bus: object, path: str, interface: str, name: str, value: Variant) -> None:
        self.calls.append((name, self.running))

    def registrations(self) -> list[tuple[str, str]]:
        return [(member, to) for member, to in self.calls if member.startswith("Register")]


class ExportingBus:
    """Export and unexport as dbus-fast does them: one object per interface name and path."""

    def __init__(self) -> None:
        self.exported: dict[tuple[str, str], object] = {}

    def export(self, path: str, interface: Any) -> None:
        if (path, interface.name) in self.exported:
            raise ValueError(f"An interface with this name is already exported: {interface.name}")
        self.exported[(path, interface.name)] = interface

    def unexport(self, path: str, interface: Any) -> None:
        self.exported.pop((path, interface.name), None)


def restarting_peripheral(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, RestartingBluez]:
    from voxkey.transports.bluetooth import peripheral as module

    bluez_bus = RestartingBluez(monkeypatch, module)
    peripheral = module.BluetoothPeripheral(BluetoothSettings(name="t"))
    peripheral.session.bus = ExportingBus()
    return peripheral, bluez_bus


def test_after_a_bluetoothd_restart_the_keyboard_service_is_registered_before_any_advertisement(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bonded host connects the moment voxkey advertises; the new bluetoothd must hold the HID service by then.

    The kernel guest's case ``bluetooth.bluetoothd_restart_mid_text`` found an evaluation that began on the
    old bluetoothd's signals registering the advertisement with the new one first (see ``AdapterSession.owner``).
    """
    import asyncio
    import logging

    peripheral, bluez_bus = restarting_peripheral(monkeypatch)

    async def scenario() -> None:
        peripheral.runner.loop = asyncio.get_running_loop()
        await peripheral._register_with_bluez()
        assert peripheral.session.owner == ":1.4" and peripheral.advertiser.current is not None
        await peripheral.advertiser.set(None)  # a host is connected: no advertisement
        bluez_bus.running = ":1.9"  # bluetoothd restarted; voxkey has not read NameOwnerChanged yet
        bluez_bus.calls.clear()
        await peripheral.advertiser.set(False)  # the rules, on the old bluetoothd's "host disconnected"
        assert peripheral.advertiser.current is None and bluez_bus.registrations() == []
        await peripheral._bluez_owner_changed(False)
        await peripheral._bluez_owner_changed(True)

    caplog.set_level(logging.ERROR)
    asyncio.run(scenario())
    assert not caplog.records, "a refusal by a bluetoothd that left is expected, not an error for the journal"
    members = [member for member, _ in bluez_bus.registrations()]
    assert members.index("RegisterApplication") < members.index("RegisterAdvertisement"), members
    assert {to for _, to in bluez_bus.registrations()} == {":1.9"}
    assert peripheral.session.owner == ":1.9" and peripheral.advertiser.current is not None


def test_a_keyboard_advertising_when_bluetoothd_restarts_advertises_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """No host connected (waiting for one, or pairing): the advertisement object must leave the bus with
    bluetoothd's registration, or the next one cannot be exported and voxkey is never found again."""
    import asyncio

    peripheral, bluez_bus = restarting_peripheral(monkeypatch)

    async def scenario() -> None:
        peripheral.runner.loop = asyncio.get_running_loop()
        await peripheral._register_with_bluez()
        assert peripheral.advertiser.current is not None
        bluez_bus.running = ":1.9"
        await peripheral._bluez_owner_changed(False)
        await peripheral._bluez_owner_changed(True)

    asyncio.run(scenario())
    assert peripheral.advertiser.current is not None
    assert bluez_bus.registrations()[-1] == ("RegisterAdvertisement", ":1.9")


def test_registering_with_a_bluetoothd_that_came_back_goes_on_until_it_works(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The adapter can still be blocked or resetting when bluetoothd is back; giving up left voxkey silent."""
    import asyncio
    import logging

    from voxkey.transports.bluetooth import peripheral as module

    monkeypatch.setattr(module, "REREGISTER_RETRY_S", 0.0)
    monkeypatch.setattr(module, "REREGISTER_SLOW_RETRY_S", 0.0)
    peripheral, bluez_bus = restarting_peripheral(monkeypatch)
    bluez_bus.refuse_registrations = module.REREGISTER_LOUD_AFTER + 5
    caplog.set_level(logging.ERROR)

    async def scenario() -> None:
        peripheral.runner.loop = asyncio.get_running_loop()
        await peripheral._bluez_owner_changed(True)

    asyncio.run(scenario())
    assert peripheral.session.registered and peripheral.session.owner == ":1.4"
    assert len(caplog.records) == 1 and "still trying" in caplog.records[0].getMessage()


def test_an_advertisement_waits_while_no_bluetoothd_holds_the_keyboard(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    peripheral, bluez_bus = restarting_peripheral(monkeypatch)
    peripheral.session.owner = None  # bluetoothd left the bus, or voxkey has not registered yet
    asyncio.run(peripheral.advertiser.set(True))
    assert peripheral.advertiser.current is None and bluez_bus.calls == []
    assert not peripheral.session.bus.exported
