"""BlueZ's D-Bus names, UUIDs, and the few calls every other module in this package makes.

BlueZ (bluetoothd) owns the controller; voxkey only talks to it over the
system bus. Everything here is a thin async helper so the modules above read
like the BlueZ documentation they follow.
"""

from __future__ import annotations

from typing import Annotated, Any

from dbus_fast import BusType, DBusError, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusSignature

from voxkey.errors import BluetoothError

BLUEZ = "org.bluez"
DBUS_NAME = DBUS_INTERFACE = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"
ADAPTER = "org.bluez.Adapter1"
DEVICE = "org.bluez.Device1"
GATT_MANAGER = "org.bluez.GattManager1"
GATT_SERVICE = "org.bluez.GattService1"
GATT_CHARACTERISTIC = "org.bluez.GattCharacteristic1"
GATT_DESCRIPTOR = "org.bluez.GattDescriptor1"
ADVERTISING_MANAGER = "org.bluez.LEAdvertisingManager1"
ADVERTISEMENT = "org.bluez.LEAdvertisement1"
AGENT_MANAGER = "org.bluez.AgentManager1"
AGENT = "org.bluez.Agent1"
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
PROPERTIES = "org.freedesktop.DBus.Properties"

ERROR_NOT_AUTHORIZED = "org.bluez.Error.NotAuthorized"
ERROR_REJECTED = "org.bluez.Error.Rejected"
ERROR_CANCELED = "org.bluez.Error.Canceled"
ERROR_NOT_PERMITTED = "org.bluez.Error.NotPermitted"
ERROR_INVALID_OFFSET = "org.bluez.Error.InvalidOffset"
ERROR_INVALID_LENGTH = "org.bluez.Error.InvalidValueLength"

DBusNone = Annotated[None, DBusSignature("")]
"""Return annotation of a D-Bus method with no reply values (a bare ``None`` is not understood)."""

BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"


def uuid16(short: int) -> str:
    """The 128-bit form of a Bluetooth SIG 16-bit UUID, as BlueZ prints it."""
    return f"{short:08x}{BASE_UUID_TAIL}"


HID_SERVICE = uuid16(0x1812)
BATTERY_SERVICE = uuid16(0x180F)
DEVICE_INFORMATION_SERVICE = uuid16(0x180A)
HID_INFORMATION = uuid16(0x2A4A)
REPORT_MAP = uuid16(0x2A4B)
HID_CONTROL_POINT = uuid16(0x2A4C)
REPORT = uuid16(0x2A4D)
PROTOCOL_MODE = uuid16(0x2A4E)
BOOT_KEYBOARD_INPUT = uuid16(0x2A22)
BOOT_KEYBOARD_OUTPUT = uuid16(0x2A32)
BATTERY_LEVEL = uuid16(0x2A19)
PNP_ID = uuid16(0x2A50)
MANUFACTURER_NAME = uuid16(0x2A29)
MODEL_NUMBER = uuid16(0x2A24)
REPORT_REFERENCE = uuid16(0x2908)

APPEARANCE_KEYBOARD = 0x03C1


async def connect_system_bus() -> MessageBus:
    try:
        return await MessageBus(bus_type=BusType.SYSTEM).connect()
    except (OSError, DBusError) as exc:
        raise BluetoothError(f"cannot reach the system D-Bus ({exc}); is dbus running?") from exc


async def call(
    bus: MessageBus,
    path: str,
    interface: str,
    member: str,
    signature: str = "",
    body: list[Any] | None = None,
    *,
    destination: str = BLUEZ,
) -> list[Any]:
    """Call a BlueZ method; a D-Bus error becomes ``DBusError`` for the caller to judge.

    ``destination``: one bluetoothd by its unique bus name (``AdapterSession.owner``) instead of whichever
    process owns ``org.bluez`` when the call is sent.
    """
    reply = await bus.call(
        Message(
            destination=destination,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=body or [],
        )
    )
    if reply is None:
        return []
    if reply.message_type == MessageType.ERROR:
        raise DBusError(
            reply.error_name or "org.freedesktop.DBus.Error.Failed", str(reply.body[0] if reply.body else "")
        )
    return list(reply.body)


async def name_owner(bus: MessageBus) -> str | None:
    """The unique bus name (``:1.4``) of the bluetoothd running now, or None if none is on the bus."""
    try:
        (owner,) = await call(bus, DBUS_PATH, DBUS_INTERFACE, "GetNameOwner", "s", [BLUEZ], destination=DBUS_NAME)
    except DBusError as exc:
        if exc.type == "org.freedesktop.DBus.Error.NameHasNoOwner":
            return None
        raise BluetoothError(f"cannot ask the system D-Bus for bluetoothd: {exc.text or exc.type}") from exc
    return str(owner)


async def managed_objects(bus: MessageBus) -> dict[str, dict[str, dict[str, Any]]]:
    """Every BlueZ object with its interfaces and plain (unwrapped) property values."""
    try:
        (objects,) = await call(bus, "/", OBJECT_MANAGER, "GetManagedObjects")
    except DBusError as exc:
        raise BluetoothError(f"bluetoothd is not answering on D-Bus ({exc.text or exc.type}); is it running?") from exc
    return {
        path: {name: {key: plain(value) for key, value in props.items()} for name, props in interfaces.items()}
        for path, interfaces in objects.items()
    }


async def set_property(bus: MessageBus, path: str, interface: str, name: str, value: Variant) -> None:
    await call(bus, path, PROPERTIES, "Set", "ssv", [interface, name, value])


async def adapter_path(bus: MessageBus, adapter: str) -> str:
    """``/org/bluez/hci0`` for ``hci0``, or an error naming the adapters that do exist."""
    objects = await managed_objects(bus)
    adapters = sorted(path for path, interfaces in objects.items() if ADAPTER in interfaces)
    wanted = f"/org/bluez/{adapter}"
    if wanted not in adapters:
        found = ", ".join(path.rsplit("/", 1)[-1] for path in adapters) or "none"
        raise BluetoothError(f"Bluetooth adapter {adapter} not found (adapters: {found}); set bluetooth.adapter")
    return wanted


def device_path(adapter_object: str, address: str) -> str:
    return f"{adapter_object}/dev_{address.upper().replace(':', '_')}"


def plain(value: Any) -> Any:
    """A D-Bus variant's value; anything else as it is."""
    return value.value if isinstance(value, Variant) else value
