"""The running Bluetooth keyboard: BlueZ registrations, hosts, pairing mode, and the LED state.

BlueZ's API is asynchronous D-Bus; voxkey's ``Keyboard`` is plain blocking
code. So the peripheral runs its own asyncio loop in a thread, and everything
the rest of voxkey calls here is thread-safe and synchronous.

Who may type: a host is *ready* when it is connected to our adapter, bonded
with voxkey (paired during pairing mode, marked Trusted by us), and subscribed
to the key input report. Any other host that connects outside pairing mode is
disconnected at once. If bluetoothd restarts, every registration is made again
as soon as it is back on the bus.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from dbus_fast import DBusError, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from voxkey.errors import BluetoothError
from voxkey.transports.bluetooth import bluez
from voxkey.transports.bluetooth.advertising import Advertisement
from voxkey.transports.bluetooth.agent import PairingAgent, PasskeySource
from voxkey.transports.bluetooth.devices import DeviceView, describe, device_from, unwrap
from voxkey.transports.bluetooth.gatt import GattCallbacks, HidApplication, consumer_report
from voxkey.transports.bluetooth.loop_thread import LoopThread
from voxkey.transports.bluetooth.pairing import PairingWindow
from voxkey.transports.bluetooth.policy import Decision, decide
from voxkey.transports.bluetooth.settings import BluetoothSettings, BluetoothState

log = logging.getLogger(__name__)

APP_ROOT = "/org/voxkey/hid"
AGENT_PATH = "/org/voxkey/agent"
ADVERTISEMENT_PATH = "/org/voxkey/advertisement0"
STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 20.0
"""Unregistering takes a few D-Bus round trips; an emulated CPU needed more than 5 s for them."""

T = TypeVar("T")


class BluetoothPeripheral:
    """voxkey as a BLE HID keyboard on one adapter; see the package docstring for the API."""

    def __init__(
        self,
        settings: BluetoothSettings,
        on_state: Callable[[BluetoothState], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.on_state = on_state
        self.clock = clock
        """What pairing mode's window is timed by (tests pass a fake one)."""
        self.pairing_window: PairingWindow | None = None
        self.adapter_path = f"/org/bluez/{settings.adapter}"
        self.devices: dict[str, DeviceView] = {}
        self.leds = 0
        self.host_arrived_at = 0.0
        """``time.monotonic()`` when a host last subscribed or (re)attached: the link lets it settle first."""
        self._state = BluetoothState.STOPPED
        self._powered = False
        """The adapter's radio is on. An rfkill block or a controller reset turns it off under us;
        BlueZ refuses advertisements meanwhile, and the kernel forgets the one we had."""
        self._pairing = False
        self._pairing_timer: asyncio.TimerHandle | None = None
        self._pairing_result: concurrent.futures.Future[str | None] | None = None
        self._bus: MessageBus | None = None
        self.runner = LoopThread("voxkey-bluetooth")
        self._advertisement: Advertisement | None = None
        self._advertisement_pending: Advertisement | None = None
        self._evaluating: asyncio.Lock | None = None
        self._closing = False
        self._registered = False
        self._listeners: list[Callable[[], None]] = []
        self._told_unsupported: set[str] = set()
        """Device paths whose unusable stack was logged during their current connection."""
        self._lock = threading.Lock()
        self.app = HidApplication(
            APP_ROOT,
            GattCallbacks(
                on_output_report=self._on_output_report,
                on_notifying=self._on_notifying,
                on_protocol_mode=lambda mode: self._refresh(),
                host_allowed=self.host_allowed,
            ),
            battery_level=settings.battery_level,
        )
        self.agent = PairingAgent(
            AGENT_PATH,
            lambda: self._pairing,
            self.host_allowed,
            lambda: self._pairing_failed("a host", "it cancelled"),
            method=settings.pairing,
        )

    # ----------------------------------------------------------------- public, thread-safe

    @property
    def state(self) -> BluetoothState:
        return self._state

    @property
    def pairing(self) -> bool:
        return self._pairing

    def add_listener(self, listener: Callable[[], None]) -> None:
        """``listener()`` runs (on the D-Bus thread) whenever hosts, subscriptions or LEDs change."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Connect to BlueZ and register everything; raises ``BluetoothError`` if that fails."""
        if self.runner.started:
            return
        self._closing = False
        try:
            self.runner.start(self._connect, STARTUP_TIMEOUT_S)
        except concurrent.futures.TimeoutError as exc:
            self.close()
            raise BluetoothError("bluetoothd did not answer within 30 s; check 'systemctl status bluetooth'") from exc
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.runner.stop(self._shutdown, SHUTDOWN_TIMEOUT_S)

    def start_pairing(self, timeout_s: float | None = None) -> concurrent.futures.Future[str | None]:
        """Enter pairing mode; the future resolves to the new host's address, or None on timeout."""
        return self.runner.submit(self._start_pairing(timeout_s or self.settings.pairing_timeout_s))

    def stop_pairing(self) -> None:
        self.runner.submit(self._stop_pairing(None)).result(timeout=10)

    def set_passkey_source(self, source: PasskeySource | None) -> None:
        """Where the passkey a host shows comes from (``bluetooth.pairing: passkey``); see ``agent``."""
        self.agent.passkey_source = source

    def ready_host(self) -> DeviceView | None:
        """The bonded, connected host that subscribed to key reports, if there is one."""
        with self._lock:
            return self._ready_host_locked()

    def notify_input(self, report: bytes) -> None:
        """Queue one key report for the subscribed host (delivery is tracked by the link)."""
        self.runner.call_soon(self._emit, report)

    @property
    def consumer_subscribed(self) -> bool:
        """Whether the host asked for media-key reports (a host that only wants text may not)."""
        return bool(self.app.consumer_input.notifying)

    def notify_consumer(self, usage: int) -> None:
        self.runner.call_soon(self.app.consumer_input.notify, consumer_report(usage))

    def hosts(self) -> list[DeviceView]:
        with self._lock:
            return [device for device in self.devices.values() if device.is_bonded_host]

    def host_allowed(self, device_path: str) -> bool:
        """Bonded hosts always; in pairing mode also the host that is pairing right now.

        A host reads the HID characteristics as soon as the link is encrypted,
        which is before BlueZ reports the bond and before we mark it Trusted
        (BlueZ 5.82's hog read HID Information and Protocol Mode in that gap
        and was refused). Outside pairing mode no host can get that far: the
        characteristics need encryption and the adapter is not pairable.
        """
        device = self.devices.get(device_path)
        if device is None:
            return False
        return device.is_bonded_host or (self._pairing and device.connected)

    # ----------------------------------------------------------------- loop thread

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        self.runner.spawn(coroutine)

    async def _connect(self) -> None:
        self._bus = await bluez.connect_system_bus()
        self._bus.add_message_handler(self._on_message)
        for rule in (
            f"type='signal',sender='{bluez.BLUEZ}',interface='{bluez.PROPERTIES}',member='PropertiesChanged'",
            f"type='signal',sender='{bluez.BLUEZ}',interface='{bluez.OBJECT_MANAGER}'",
            "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.bluez'",
        ):
            await self._bus.call(
                Message(
                    destination="org.freedesktop.DBus",
                    path="/org/freedesktop/DBus",
                    interface="org.freedesktop.DBus",
                    member="AddMatch",
                    signature="s",
                    body=[rule],
                )
            )
        self.app.export(self._bus)
        self._bus.export(AGENT_PATH, self.agent)
        await self._register_with_bluez()

    async def _register_with_bluez(self) -> None:
        bus = self._require_bus()
        await bluez.adapter_path(bus, self.settings.adapter)
        adapter = self.adapter_path
        await self._set_adapter("Powered", Variant("b", True))
        self._powered = True
        await self._set_adapter("Alias", Variant("s", self.settings.name))
        await self._set_adapter("Pairable", Variant("b", self._pairing))
        await self._set_adapter("PairableTimeout", Variant("u", 0))
        # Know the bonded hosts before the service exists: a bonded host that is still connected
        # reads it at once, and was refused while the list was empty.
        objects = await bluez.managed_objects(bus)
        with self._lock:
            self.devices = {
                path: device_from(path, interfaces[bluez.DEVICE])
                for path, interfaces in objects.items()
                if bluez.DEVICE in interfaces and path.startswith(adapter + "/")
            }
        try:
            await bluez.call(bus, adapter, bluez.GATT_MANAGER, "RegisterApplication", "oa{sv}", [APP_ROOT, {}])
            await bluez.call(
                bus, "/org/bluez", bluez.AGENT_MANAGER, "RegisterAgent", "os", [AGENT_PATH, self.agent.capability]
            )
            await bluez.call(bus, "/org/bluez", bluez.AGENT_MANAGER, "RequestDefaultAgent", "o", [AGENT_PATH])
        except DBusError as exc:
            raise BluetoothError(f"BlueZ refused voxkey's keyboard service: {exc.text or exc.type}") from exc
        self._registered = True
        log.info("bluetooth: keyboard %r registered on %s", self.settings.name, self.settings.adapter)
        await self._evaluate()

    async def _shutdown(self) -> None:
        bus = self._bus
        if bus is None:
            return
        self._closing = True
        if self._pairing:
            await self._stop_pairing(None)
        await self._set_advertising(None)
        await self._disconnect_all()
        if self._registered:
            for path, interface, member, body in (
                (self.adapter_path, bluez.GATT_MANAGER, "UnregisterApplication", [APP_ROOT]),
                ("/org/bluez", bluez.AGENT_MANAGER, "UnregisterAgent", [AGENT_PATH]),
            ):
                try:
                    await bluez.call(bus, path, interface, member, "o", body)
                except DBusError as exc:
                    log.debug("bluetooth: %s: %s", member, exc.text)
        self._registered = False
        self._set_state(BluetoothState.STOPPED)
        bus.disconnect()
        self._bus = None

    async def _disconnect_all(self) -> None:
        """Leave as a keyboard that lost power does: the link goes first, the HID service after.

        Unregistering the GATT application while a host is connected makes
        BlueZ tell that host the HID service is gone (Service Changed). Linux's
        hog then drops voxkey as a keyboard and stops reconnecting to it by
        itself (seen in the test guest: no reconnection after a restart). A host
        that is disconnected first keeps its cached services and reconnects when
        voxkey advertises again.
        """
        with self._lock:
            connected = [device for device in self.devices.values() if device.connected]
        for device in connected:
            await self._disconnect(device)

    def _require_bus(self) -> MessageBus:
        if self._bus is None:
            raise BluetoothError("not connected to the system D-Bus")
        return self._bus

    async def _set_adapter(self, name: str, value: Variant) -> None:
        try:
            await bluez.set_property(self._require_bus(), self.adapter_path, bluez.ADAPTER, name, value)
        except DBusError as exc:
            raise BluetoothError(f"cannot set {name} on {self.settings.adapter}: {exc.text or exc.type}") from exc

    # ----------------------------------------------------------------- pairing mode

    async def _start_pairing(self, timeout_s: float) -> str | None:
        if self._pairing_result is None or self._pairing_result.done():
            self._pairing_result = concurrent.futures.Future()
        result = self._pairing_result
        self._pairing = True
        self.pairing_window = PairingWindow(timeout_s, self.clock)
        await self._set_adapter("Pairable", Variant("b", True))
        self._arm_pairing_timer()
        how = "and enter the code it shows" if self.settings.pairing == "passkey" else "(no code: Just Works)"
        log.info(
            "bluetooth: pairing mode on for %.0f s: pair with %r from the host %s", timeout_s, self.settings.name, how
        )
        await self._evaluate()
        return await asyncio.wrap_future(result)

    def _arm_pairing_timer(self) -> None:
        if self._pairing_timer is not None:
            self._pairing_timer.cancel()
        window = self.pairing_window
        delay = window.remaining_s() if window is not None else 0.0
        self._pairing_timer = self.runner.require().call_later(delay, self._pairing_deadline)

    def _pairing_deadline(self) -> None:
        """The timer fired: close the window if its own clock agrees, else wait for the rest."""
        self._pairing_timer = None
        window = self.pairing_window
        if not self._pairing or window is None:
            return
        if window.expired:
            self._spawn(self._stop_pairing(None))
        else:
            self._arm_pairing_timer()

    def _pairing_failed(self, host: str, why: str) -> None:
        """A host gave up on pairing: the window stays open (``pairing`` module), and the log says so."""
        window = self.pairing_window
        if self._pairing and window is not None and not window.expired:
            log.warning("bluetooth: %s", window.attempt_failed(host, why))

    async def _stop_pairing(self, bonded: str | None, reevaluate: bool = True) -> None:
        if self._pairing_timer is not None:
            self._pairing_timer.cancel()
            self._pairing_timer = None
        if not self._pairing:
            return
        self._pairing = False
        try:
            await self._set_adapter("Pairable", Variant("b", False))
        except BluetoothError as exc:
            log.warning("bluetooth: %s", exc)
        if bonded:
            log.info("bluetooth: bonded with %s; pairing mode off", bonded)
        else:
            log.info("bluetooth: pairing mode ended without a new host")
        if self._pairing_result is not None and not self._pairing_result.done():
            self._pairing_result.set_result(bonded)
        if reevaluate:
            await self._evaluate()

    # ----------------------------------------------------------------- BlueZ signals

    def _on_message(self, message: Message) -> Message | None:
        if message.message_type == MessageType.METHOD_CALL:
            return self._answer_object_manager(message)
        if message.message_type != MessageType.SIGNAL:
            return None
        if message.member == "NameOwnerChanged":
            _, _, new_owner = message.body
            self._spawn(self._bluez_owner_changed(bool(new_owner)))
            return None
        if (
            message.member == "PropertiesChanged"
            and message.path == self.adapter_path
            and message.body[0] == bluez.ADAPTER
            and "Powered" in message.body[1]
        ):
            self._spawn(self._adapter_powered(bool(unwrap(message.body[1])["Powered"])))
            return None
        changed = False
        with self._lock:
            if message.member == "PropertiesChanged" and message.body[0] == bluez.DEVICE:
                device = self.devices.get(message.path or "")
                if device is not None:
                    changes = unwrap(message.body[1])
                    log.debug("bluetooth: %s %s", device.address, describe(changes))
                    if changes.get("Connected") is False and device.connected and not device.paired:
                        self._pairing_failed(device.address, "it disconnected before bonding")
                    device.update(changes)
                    if changes.get("ServicesResolved") and device.is_bonded_host:
                        self.host_arrived_at = time.monotonic()
                    changed = True
            elif message.member == "InterfacesAdded" and bluez.DEVICE in message.body[1]:
                path = message.body[0]
                if path.startswith(self.adapter_path + "/"):
                    self.devices[path] = device_from(path, unwrap(message.body[1][bluez.DEVICE]))
                    changed = True
            elif message.member == "InterfacesRemoved" and bluez.DEVICE in message.body[1]:
                changed = self.devices.pop(message.body[0], None) is not None
        if changed:
            self._spawn(self._evaluate())
        return None

    def _answer_object_manager(self, message: Message) -> Message | None:
        """Answer BlueZ's ``GetManagedObjects`` on the advertisement's own path.

        bluetoothd reads an advertisement's properties that way, and expects the
        object itself in the answer; dbus-fast's built-in handler lists only the
        objects *below* a path, which made BlueZ advertise an empty, non-connectable
        set. A message handler runs before the built-in one.
        """
        advertisement = self._advertisement_pending or self._advertisement
        if (
            message.interface != bluez.OBJECT_MANAGER
            or message.member != "GetManagedObjects"
            or advertisement is None
            or message.path != advertisement.path
        ):
            return None
        objects = {advertisement.path: {bluez.ADVERTISEMENT: advertisement.properties()}}
        return Message.new_method_return(message, "a{oa{sa{sv}}}", [objects])

    async def _bluez_owner_changed(self, present: bool) -> None:
        self._registered = False
        self._advertisement = None
        if not present:
            log.warning("bluetooth: bluetoothd left the bus; waiting for it to come back")
            with self._lock:
                self.devices.clear()
            self._set_state(BluetoothState.STARTING)
            self._notify_listeners()
            return
        log.info("bluetooth: bluetoothd is back; registering the keyboard again")
        for attempt in range(20):
            try:
                await self._register_with_bluez()
                return
            except (BluetoothError, DBusError) as exc:
                log.debug("bluetooth: re-registration attempt %d: %s", attempt, exc)
                await asyncio.sleep(0.5)
        log.error("bluetooth: could not register with the restarted bluetoothd")

    async def _adapter_powered(self, powered: bool) -> None:
        """The radio went off (rfkill, a controller reset) or came back: the rules decide the advertising.

        Found in the test guest: after an rfkill block BlueZ refused the
        advertisement, and with none registered the bonded host never found
        voxkey again once the radio was back. With the radio off the
        evaluation unregisters it; when power returns it registers a new one.
        """
        if powered == self._powered:
            return
        self._powered = powered
        if not powered:
            log.warning(
                "bluetooth: %s was powered off (rfkill or a controller reset?); waiting for it", self.settings.adapter
            )
        else:
            log.info("bluetooth: %s is powered again", self.settings.adapter)
        await self._evaluate()

    async def _evaluate(self) -> None:
        """Apply the rules: bond new hosts in pairing mode, drop strangers, advertise when useful.

        Serialized: signals arrive in bursts, and two interleaved evaluations
        would register the advertisement twice.
        """
        if self._closing:  # the rules are for a running keyboard; shutdown makes its own changes
            return
        if self._evaluating is None:
            self._evaluating = asyncio.Lock()
        async with self._evaluating:
            await self._evaluate_locked()

    async def _evaluate_locked(self) -> None:
        bus = self._bus
        if bus is None or not self._registered:
            return
        with self._lock:
            devices = list(self.devices.values())
        self._report_unusable(devices)
        decision = self._decide(devices)
        if decision.bond is not None:
            await self._trust(decision.bond)
            await self._stop_pairing(decision.bond.address, reevaluate=False)
            await self._evaluate_locked()
            return
        for device in decision.strangers:
            log.warning("bluetooth: %s is not a bonded host and voxkey is not pairing; disconnecting", device.address)
            await self._disconnect(device)
        for device in decision.displaced:
            log.info(
                "bluetooth: preferred host %s is here; disconnecting %s", self.settings.preferred_host, device.address
            )
            await self._disconnect(device)
        with self._lock:  # the disconnections above took a while: advertise and show what is true now
            decision = self._decide(list(self.devices.values()))
        await self._set_advertising(decision.advertise)
        self._set_state(decision.state)
        self._notify_listeners()

    def _decide(self, devices: list[DeviceView]) -> Decision:
        return decide(
            devices,
            pairing=self._pairing,
            powered=self._powered,
            preferred=self.settings.preferred_host,
            subscribed=self._registered and bool(self.app.input_report.notifying),
        )

    def _report_unusable(self, devices: list[DeviceView]) -> None:
        """Log a connected host whose stack drops our key reports, once per connection (``hostcompat``)."""
        for device in devices:
            if not device.connected:
                self._told_unsupported.discard(device.path)
            elif device.problem and device.path not in self._told_unsupported:
                self._told_unsupported.add(device.path)
                log.error("bluetooth: %s (%s): %s", device.address, device.name or "no name", device.problem)

    async def _trust(self, device: DeviceView) -> None:
        try:
            await bluez.set_property(self._require_bus(), device.path, bluez.DEVICE, "Trusted", Variant("b", True))
            device.trusted = True
        except DBusError as exc:
            log.warning("bluetooth: cannot mark %s trusted: %s", device.address, exc.text)

    async def _disconnect(self, device: DeviceView) -> None:
        try:
            await bluez.call(self._require_bus(), device.path, bluez.DEVICE, "Disconnect")
        except DBusError as exc:
            log.debug("bluetooth: disconnect %s: %s", device.address, exc.text)

    async def _set_advertising(self, discoverable: bool | None) -> None:
        """Advertise (general discoverable or not), or stop advertising with None."""
        bus = self._bus
        current = self._advertisement
        if current is not None and (discoverable is None or current.discoverable != discoverable):
            self._advertisement = None
            if bus is not None:
                try:
                    await bluez.call(
                        bus,
                        self.adapter_path,
                        bluez.ADVERTISING_MANAGER,
                        "UnregisterAdvertisement",
                        "o",
                        [current.path],
                    )
                except DBusError as exc:
                    log.debug("bluetooth: unregister advertisement: %s", exc.text)
                bus.unexport(current.path, current)
        if discoverable is None or self._advertisement is not None or bus is None:
            return
        advertisement = Advertisement(ADVERTISEMENT_PATH, self.settings.name, discoverable)
        bus.export(advertisement.path, advertisement)
        self._advertisement_pending = advertisement
        try:
            await bluez.call(
                bus,
                self.adapter_path,
                bluez.ADVERTISING_MANAGER,
                "RegisterAdvertisement",
                "oa{sv}",
                [advertisement.path, {}],
            )
        except DBusError as exc:
            bus.unexport(advertisement.path, advertisement)
            # Refused because the radio went off meanwhile: it is registered again when power returns.
            report = log.error if self._powered else log.debug
            report("bluetooth: BlueZ refused the advertisement: %s", exc.text or exc.type)
            return
        finally:
            self._advertisement_pending = None
        self._advertisement = advertisement
        log.debug("bluetooth: advertising (%s)", "discoverable" if discoverable else "bonded hosts only")

    # ----------------------------------------------------------------- helpers

    def _ready_host_locked(self) -> DeviceView | None:
        if not self._registered:
            return None
        return self._decide(list(self.devices.values())).ready

    def _emit(self, report: bytes) -> None:
        self.app.input_report.notify(report)

    def _on_output_report(self, value: bytes) -> None:
        self.leds = value[0]
        self._notify_listeners()

    def _on_notifying(self, uuid: str, notifying: bool) -> None:
        if notifying:
            self.host_arrived_at = time.monotonic()
        self._refresh()

    def _refresh(self) -> None:
        if self.runner.loop is not None:
            self._spawn(self._evaluate())

    def _set_state(self, state: BluetoothState) -> None:
        if state == self._state:
            return
        self._state = state
        log.info("bluetooth: %s", state.value)
        if self.on_state is not None:
            try:
                self.on_state(state)
            except Exception:
                log.exception("bluetooth: state listener failed")

    def _notify_listeners(self) -> None:
        for listener in self._listeners:
            listener()
