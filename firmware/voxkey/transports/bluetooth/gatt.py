"""The GATT application voxkey registers with BlueZ: a HID-over-GATT keyboard.

What a host (iPad, Android, Windows, Linux's ``hog``) looks for, per the HID
over GATT Profile (HOGP 1.0):

- HID Service with HID Information, one Report Map, a Report characteristic per
  report (each with a Report Reference descriptor naming its report ID and
  type), Protocol Mode, HID Control Point, and the boot keyboard input/output
  characteristics for hosts that switch to boot protocol;
- Battery Service (HOGP requires it) and Device Information with a PnP ID.

Every HID characteristic needs an encrypted link (BlueZ ``encrypt-*`` flags):
an unpaired host gets "insufficient encryption" and, because voxkey is only
pairable in pairing mode, cannot fix that by pairing. ``encrypt-authenticated-*``
would demand MITM-protected pairing, which needs a display or a keypad on the
keyboard; voxkey has one button, so its bonds are LE Secure Connections "Just
Works" and the authenticated flags would lock every host out. On top of that,
reads and writes are only answered for hosts the ``HostPolicy`` accepts (bonded
during pairing mode), which also shuts out a host that encrypted with a
non-bonding pairing.

The keyboard report is the one the USB gadget uses (``voxkey.hid``), with
report ID 1 added because a consumer-control report (ID 2, media keys such as
Eject) shares the Report Map. Notifications carry report data without the ID.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from dbus_fast import DBusError, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import (
    DBusBool,
    DBusBytes,
    DBusDict,
    DBusObjectPath,
    DBusSignature,
    DBusStr,
    DBusUInt16,
)
from dbus_fast.constants import PropertyAccess
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

from voxkey.hid import RELEASE_ALL, keyboard_report_descriptor
from voxkey.transports.bluetooth import bluez

log = logging.getLogger(__name__)

KEYBOARD_REPORT_ID = 1
CONSUMER_REPORT_ID = 2
REPORT_TYPE_INPUT = 1
REPORT_TYPE_OUTPUT = 2
PROTOCOL_MODE_BOOT = 0
PROTOCOL_MODE_REPORT = 1
CONSUMER_RELEASE = bytes(2)

HID_VERSION_1_11 = 0x0111
HID_FLAG_NORMALLY_CONNECTABLE = 0x02
PNP_VENDOR_SOURCE_USB = 0x02
PNP_VENDOR_LINUX_FOUNDATION = 0x1D6B
PNP_PRODUCT = 0x0104  # the same ids the USB gadget reports
PNP_VERSION = 0x0100

SERVICE_HANDLES: dict[str, int] = {
    bluez.HID_SERVICE: 0x0100,
    bluez.BATTERY_SERVICE: 0x0120,
    bluez.DEVICE_INFORMATION_SERVICE: 0x0130,
}
"""Where each service starts in the attribute table: the same handles in every run (see ``pin_handles``).

Above the handles bluetoothd gives its own services (GAP, GATT, its Device
Information) and those of its plugins, which it registers before voxkey runs:
in the test guest 5.66 and 5.82 ended theirs below 0x0040.
"""

DBusStrList = Annotated[list[str], DBusSignature("as")]
DBusObjectPathList = Annotated[list[str], DBusSignature("ao")]

# One consumer-control usage (16 bits) per report: Eject, volume, play/pause...
CONSUMER_COLLECTION = bytes.fromhex(
    "05 0c"  # Usage Page (Consumer)
    "09 01"  # Usage (Consumer Control)
    "a1 01"  # Collection (Application)
    "85 02"  #   Report ID (2)
    "15 00"  #   Logical Minimum (0)
    "26 ff 03"  # Logical Maximum (0x3FF)
    "19 00"  #   Usage Minimum (0)
    "2a ff 03"  # Usage Maximum (0x3FF)
    "75 10"  #   Report Size (16)
    "95 01"  #   Report Count (1)
    "81 00"  #   Input (Data, Array, Absolute)
    "c0"  # End Collection
)


def report_map(keyboard_descriptor: bytes | None = None) -> bytes:
    """The Report Map: the USB keyboard descriptor with report ID 1, then the consumer collection.

    The ID goes right after the keyboard's Collection (Application) item, so
    input and LED output reports both carry ID 1.
    """
    descriptor = keyboard_report_descriptor() if keyboard_descriptor is None else keyboard_descriptor
    collection = bytes.fromhex("a1 01")
    position = descriptor.find(collection)
    if position < 0 or bytes.fromhex("85") in _item_prefixes(descriptor):
        raise ValueError("keyboard descriptor must have one application collection and no report IDs")
    cut = position + len(collection)
    return descriptor[:cut] + bytes([0x85, KEYBOARD_REPORT_ID]) + descriptor[cut:] + CONSUMER_COLLECTION


def _item_prefixes(descriptor: bytes) -> Iterator[bytes]:
    """Each short item's prefix byte, so a data byte equal to 0x85 is never mistaken for Report ID."""
    index = 0
    while index < len(descriptor):
        prefix = descriptor[index]
        size = (0, 1, 2, 4)[prefix & 0x03]
        yield bytes([prefix])
        index += 1 + size


def hid_information() -> bytes:
    return HID_VERSION_1_11.to_bytes(2, "little") + bytes([0, HID_FLAG_NORMALLY_CONNECTABLE])


def pnp_id() -> bytes:
    return (
        bytes([PNP_VENDOR_SOURCE_USB])
        + PNP_VENDOR_LINUX_FOUNDATION.to_bytes(2, "little")
        + PNP_PRODUCT.to_bytes(2, "little")
        + PNP_VERSION.to_bytes(2, "little")
    )


def consumer_report(usage: int) -> bytes:
    return usage.to_bytes(2, "little")


HostPolicy = Callable[[str], bool]
"""Given a BlueZ device object path, whether that host may use the keyboard."""


def allow_any_host(device: str) -> bool:
    return True


@dataclass
class GattCallbacks:
    """What the application tells its owner; all run on the D-Bus event loop."""

    on_output_report: Callable[[bytes], None] = lambda value: None
    on_protocol_mode: Callable[[int], None] = lambda mode: None
    on_notifying: Callable[[str, bool], None] = lambda uuid, notifying: None
    on_control_point: Callable[[int], None] = lambda command: None
    host_allowed: HostPolicy = field(default=allow_any_host)


class Characteristic(ServiceInterface):  # type: ignore[misc]
    """One GATT characteristic served from a Python value."""

    def __init__(
        self,
        path: str,
        service: str,
        uuid: str,
        flags: list[str],
        value: bytes,
        callbacks: GattCallbacks,
        on_write: Callable[[bytes], None] | None = None,
        guarded: bool = True,
    ) -> None:
        super().__init__(bluez.GATT_CHARACTERISTIC)
        self.path = path
        self.service_path = service
        self.uuid = uuid
        self.flags = flags
        self.value = value
        self.notifying = False
        self.descriptors: list[Descriptor] = []
        self.handle = 0
        """The value's attribute handle (its declaration is the one before); 0 lets BlueZ choose."""
        self._callbacks = callbacks
        self._on_write = on_write
        self._guarded = guarded

    def check_host(self, options: dict[str, Variant]) -> None:
        device = options.get("device")
        if self._guarded and device is not None and not self._callbacks.host_allowed(str(device.value)):
            log.warning("bluetooth: refused %s access by %s: not a bonded voxkey host", self.uuid[4:8], device.value)
            raise DBusError(bluez.ERROR_NOT_AUTHORIZED, "host is not bonded with voxkey")

    @dbus_method()
    def ReadValue(self, options: DBusDict) -> DBusBytes:
        self.check_host(options)
        offset = int(options["offset"].value) if "offset" in options else 0
        if offset > len(self.value):
            raise DBusError(bluez.ERROR_INVALID_OFFSET, f"offset {offset} beyond {len(self.value)} bytes")
        return self.value[offset:]

    @dbus_method()
    def WriteValue(self, value: DBusBytes, options: DBusDict) -> bluez.DBusNone:
        self.check_host(options)
        if self._on_write is None:
            raise DBusError(bluez.ERROR_NOT_PERMITTED, "characteristic is read-only")
        self._on_write(bytes(value))

    @dbus_method()
    def StartNotify(self) -> bluez.DBusNone:
        self.notifying = True
        self._callbacks.on_notifying(self.uuid, True)

    @dbus_method()
    def StopNotify(self) -> bluez.DBusNone:
        self.notifying = False
        self._callbacks.on_notifying(self.uuid, False)

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> DBusStr:
        return self.uuid

    @dbus_property(access=PropertyAccess.READ)
    def Service(self) -> DBusObjectPath:
        return self.service_path

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> DBusStrList:
        return self.flags

    @dbus_property(access=PropertyAccess.READ)
    def Value(self) -> DBusBytes:
        return self.value

    @dbus_property(access=PropertyAccess.READ)
    def Notifying(self) -> DBusBool:
        return self.notifying

    @dbus_property(access=PropertyAccess.READ)
    def Handle(self) -> DBusUInt16:
        return self.handle

    def notify(self, value: bytes) -> None:
        """Send ``value`` to every subscribed host: BlueZ turns this signal into ATT notifications."""
        self.value = value
        self.emit_properties_changed({"Value": value})

    def properties(self) -> dict[str, Variant]:
        return {
            "UUID": Variant("s", self.uuid),
            "Service": Variant("o", self.service_path),
            "Flags": Variant("as", self.flags),
            "Notifying": Variant("b", self.notifying),
            "Handle": Variant("q", self.handle),
        }


class Descriptor(ServiceInterface):  # type: ignore[misc]
    def __init__(self, path: str, characteristic: Characteristic, uuid: str, flags: list[str], value: bytes) -> None:
        super().__init__(bluez.GATT_DESCRIPTOR)
        self.path = path
        self.characteristic = characteristic
        self.uuid = uuid
        self.flags = flags
        self.value = value
        self.handle = 0

    @dbus_method()
    def ReadValue(self, options: DBusDict) -> DBusBytes:
        self.characteristic.check_host(options)
        offset = int(options["offset"].value) if "offset" in options else 0
        return self.value[offset:]

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> DBusStr:
        return self.uuid

    @dbus_property(access=PropertyAccess.READ)
    def Characteristic(self) -> DBusObjectPath:
        return self.characteristic.path

    @dbus_property(access=PropertyAccess.READ)
    def Handle(self) -> DBusUInt16:
        return self.handle

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> DBusStrList:
        return self.flags

    def properties(self) -> dict[str, Variant]:
        return {
            "UUID": Variant("s", self.uuid),
            "Characteristic": Variant("o", self.characteristic.path),
            "Flags": Variant("as", self.flags),
            "Handle": Variant("q", self.handle),
        }


class Service(ServiceInterface):  # type: ignore[misc]
    def __init__(self, path: str, uuid: str) -> None:
        super().__init__(bluez.GATT_SERVICE)
        self.path = path
        self.uuid = uuid
        self.characteristics: list[Characteristic] = []
        self.handle = 0
        self.end_handle = 0

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> DBusStr:
        return self.uuid

    @dbus_property(access=PropertyAccess.READ)
    def Primary(self) -> DBusBool:
        return True

    @dbus_property(access=PropertyAccess.READ)
    def Includes(self) -> DBusObjectPathList:
        return []

    @dbus_property(access=PropertyAccess.READ)
    def Handle(self) -> DBusUInt16:
        return self.handle

    def properties(self) -> dict[str, Variant]:
        return {
            "UUID": Variant("s", self.uuid),
            "Primary": Variant("b", True),
            "Includes": Variant("ao", []),
            "Handle": Variant("q", self.handle),
        }


# Flags of the HID service: everything needs an encrypted (bonded) link.
READ = ["encrypt-read"]
READ_NOTIFY = ["encrypt-read", "notify", "encrypt-notify"]
READ_WRITE = ["encrypt-read", "encrypt-write", "write-without-response"]
WRITE_NO_RESPONSE = ["encrypt-write", "write-without-response"]


class HidApplication:
    """The object tree BlueZ's ``GattManager1.RegisterApplication`` reads (via ObjectManager)."""

    def __init__(
        self,
        root: str = "/org/voxkey/hid",
        callbacks: GattCallbacks | None = None,
        battery_level: int = 100,
        model: str = "voxkey voice keyboard",
    ) -> None:
        self.root = root
        self.callbacks = callbacks or GattCallbacks()
        self.protocol_mode = PROTOCOL_MODE_REPORT
        self.services: list[Service] = []
        hid = self._service(bluez.HID_SERVICE)
        self._characteristic(hid, bluez.HID_INFORMATION, READ, hid_information())
        self.report_map = self._characteristic(hid, bluez.REPORT_MAP, READ, report_map())
        self.protocol = self._characteristic(
            hid,
            bluez.PROTOCOL_MODE,
            ["encrypt-read", *WRITE_NO_RESPONSE],
            bytes([PROTOCOL_MODE_REPORT]),
            on_write=self._write_protocol_mode,
        )
        self.keyboard_input = self._characteristic(hid, bluez.REPORT, READ_NOTIFY, RELEASE_ALL)
        self._report_reference(self.keyboard_input, KEYBOARD_REPORT_ID, REPORT_TYPE_INPUT)
        self.keyboard_output = self._characteristic(
            hid, bluez.REPORT, READ_WRITE, bytes(1), on_write=self._write_output_report
        )
        self._report_reference(self.keyboard_output, KEYBOARD_REPORT_ID, REPORT_TYPE_OUTPUT)
        self.consumer_input = self._characteristic(hid, bluez.REPORT, READ_NOTIFY, CONSUMER_RELEASE)
        self._report_reference(self.consumer_input, CONSUMER_REPORT_ID, REPORT_TYPE_INPUT)
        self.boot_input = self._characteristic(hid, bluez.BOOT_KEYBOARD_INPUT, READ_NOTIFY, RELEASE_ALL)
        self.boot_output = self._characteristic(
            hid, bluez.BOOT_KEYBOARD_OUTPUT, READ_WRITE, bytes(1), on_write=self._write_output_report
        )
        self._characteristic(
            hid, bluez.HID_CONTROL_POINT, WRITE_NO_RESPONSE, bytes(1), on_write=self._write_control_point
        )
        battery = self._service(bluez.BATTERY_SERVICE)
        self.battery = self._characteristic(
            battery, bluez.BATTERY_LEVEL, ["read", "notify"], bytes([battery_level]), guarded=False
        )
        info = self._service(bluez.DEVICE_INFORMATION_SERVICE)
        self._characteristic(info, bluez.PNP_ID, ["read"], pnp_id(), guarded=False)
        self._characteristic(info, bluez.MANUFACTURER_NAME, ["read"], b"voxkey", guarded=False)
        self._characteristic(info, bluez.MODEL_NUMBER, ["read"], model.encode(), guarded=False)
        pin_handles(self.services)

    @property
    def input_report(self) -> Characteristic:
        """Where key reports go now: the boot characteristic if the host chose boot protocol."""
        return self.boot_input if self.protocol_mode == PROTOCOL_MODE_BOOT else self.keyboard_input

    def interfaces(self) -> Iterator[Service | Characteristic | Descriptor]:
        for service in self.services:
            yield service
            for characteristic in service.characteristics:
                yield characteristic
                yield from characteristic.descriptors

    def managed_objects(self) -> dict[str, dict[str, dict[str, Variant]]]:
        """What ``GetManagedObjects`` on the root returns (also what the unit tests inspect)."""
        objects: dict[str, dict[str, dict[str, Variant]]] = {}
        for interface in self.interfaces():
            objects[interface.path] = {interface.name: interface.properties()}
        return objects

    def export(self, bus: MessageBus) -> None:
        for interface in self.interfaces():
            bus.export(interface.path, interface)

    def unexport(self, bus: MessageBus) -> None:
        for interface in self.interfaces():
            bus.unexport(interface.path, interface)

    def _service(self, uuid: str) -> Service:
        service = Service(f"{self.root}/service{len(self.services)}", uuid)
        self.services.append(service)
        return service

    def _characteristic(
        self,
        service: Service,
        uuid: str,
        flags: list[str],
        value: bytes,
        on_write: Callable[[bytes], None] | None = None,
        guarded: bool = True,
    ) -> Characteristic:
        path = f"{service.path}/char{len(service.characteristics)}"
        characteristic = Characteristic(path, service.path, uuid, flags, value, self.callbacks, on_write, guarded)
        service.characteristics.append(characteristic)
        return characteristic

    def _report_reference(self, characteristic: Characteristic, report_id: int, report_type: int) -> None:
        path = f"{characteristic.path}/desc{len(characteristic.descriptors)}"
        descriptor = Descriptor(
            path, characteristic, bluez.REPORT_REFERENCE, ["encrypt-read"], bytes([report_id, report_type])
        )
        characteristic.descriptors.append(descriptor)

    def _write_protocol_mode(self, value: bytes) -> None:
        if len(value) != 1 or value[0] not in (PROTOCOL_MODE_BOOT, PROTOCOL_MODE_REPORT):
            raise DBusError(bluez.ERROR_INVALID_LENGTH, "protocol mode is one byte, 0 (boot) or 1 (report)")
        self.protocol_mode = value[0]
        self.protocol.value = value
        log.info("bluetooth: host chose %s protocol", "boot" if value[0] == PROTOCOL_MODE_BOOT else "report")
        self.callbacks.on_protocol_mode(value[0])

    def _write_output_report(self, value: bytes) -> None:
        if not value:
            raise DBusError(bluez.ERROR_INVALID_LENGTH, "LED report is one byte")
        self.keyboard_output.value = self.boot_output.value = value[:1]
        self.callbacks.on_output_report(value[:1])

    def _write_control_point(self, value: bytes) -> None:
        if len(value) == 1:
            self.callbacks.on_control_point(value[0])


def pin_handles(services: list[Service]) -> None:
    """Give every service, characteristic and descriptor the attribute handle BlueZ must use.

    Without them BlueZ hands out whatever handles are free when voxkey
    registers, which changed from one run to the next (the input Report at
    0x001d, then 0x0041). A bonded host keeps the handles it discovered; with
    new ones its reads failed with "Invalid handle" and Linux's hog deleted
    and recreated the keyboard on every reconnection, and hosts that trust
    their cache more (iOS, Windows) may never recover without pairing again.

    The layout is the one BlueZ builds (``src/gatt-database.c``, 5.66 and
    5.82 alike): the service declaration, then per characteristic its
    declaration and value (``Handle`` names the value), then the Client
    Characteristic Configuration descriptor BlueZ adds by itself to every
    notifying characteristic, then our descriptors. BlueZ reserves exactly
    that many handles for the service, so the pinned handles must be
    contiguous in that order.
    """
    for service in services:
        handle = SERVICE_HANDLES[service.uuid]
        service.handle = handle
        for characteristic in service.characteristics:
            handle += 2
            characteristic.handle = handle
            if any(flag.endswith(("notify", "indicate")) for flag in characteristic.flags):
                handle += 1
            for descriptor in characteristic.descriptors:
                handle += 1
                descriptor.handle = handle
        service.end_handle = handle


def describe(objects: dict[str, dict[str, dict[str, Any]]]) -> list[tuple[str, str, str]]:
    """(path, interface, UUID) rows, a readable summary of an object tree for logs and tests."""
    rows = []
    for path, interfaces in sorted(objects.items()):
        for name, props in interfaces.items():
            uuid = props.get("UUID")
            rows.append((path, name, str(uuid.value if isinstance(uuid, Variant) else uuid)))
    return rows
