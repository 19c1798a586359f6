"""The running Bluetooth keyboard: a thread-safe facade over BlueZ, and its lifecycle.

BlueZ's API is asynchronous D-Bus; voxkey's ``Keyboard`` is plain blocking
code. So the peripheral runs its own asyncio loop in a thread
(``loop_thread``), and everything the rest of voxkey calls here is
thread-safe and synchronous.

Who may type: a host is *ready* when it is connected to our adapter, bonded
with voxkey (paired during pairing mode, marked Trusted by us), and subscribed
to the key input report. Any other host that connects outside pairing mode is
disconnected at once. If bluetoothd restarts, every registration is made again
as soon as it is back on the bus.

Each job has its own room, and this module wires them together:

- ``mirror.DeviceMirror``: BlueZ's devices, kept current from its signals;
- ``policy.decide`` (pure) and ``enforcer.PolicyEnforcer``: who stays, whether to advertise;
- ``pairing.PairingMode``: pairing mode's window, timer and Pairable flag;
- ``advertising.Advertiser``: the one LE advertisement;
- ``adapter.AdapterSession``: the bus, the adapter, whether our registrations stand;
- here: the public API, and connecting, registering and shutting down.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from dbus_fast import DBusError, Variant

from voxkey.errors import BluetoothError
from voxkey.transports.bluetooth import bluez
from voxkey.transports.bluetooth.adapter import AdapterSession
from voxkey.transports.bluetooth.advertising import Advertiser
from voxkey.transports.bluetooth.agent import PairingAgent, PasskeySource
from voxkey.transports.bluetooth.devices import DeviceView
from voxkey.transports.bluetooth.enforcer import PolicyEnforcer
from voxkey.transports.bluetooth.gatt import GattCallbacks, HidApplication, consumer_report
from voxkey.transports.bluetooth.loop_thread import LoopThread
from voxkey.transports.bluetooth.mirror import DeviceMirror, MirrorEvents
from voxkey.transports.bluetooth.pairing import PairingMode, PairingWindow
from voxkey.transports.bluetooth.settings import BluetoothSettings, BluetoothState

log = logging.getLogger(__name__)

APP_ROOT = "/org/voxkey/hid"
AGENT_PATH = "/org/voxkey/agent"
STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 20.0
"""Unregistering takes a few D-Bus round trips; an emulated CPU needed more than 5 s for them."""
REREGISTER_RETRY_S = 0.5
"""Between attempts to register with a bluetoothd that came back, for the first ``REREGISTER_LOUD_AFTER``."""
REREGISTER_LOUD_AFTER = 20
"""Failed attempts (10 s) after which the journal hears of it; the attempts go on, ``REREGISTER_SLOW_RETRY_S`` apart."""
REREGISTER_SLOW_RETRY_S = 5.0


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
        self.session = AdapterSession(settings.adapter)
        self.adapter_path = self.session.path
        self.leds = 0
        """The host's keyboard LEDs (Caps Lock, ...), as its last output report set them."""
        self._state = BluetoothState.STOPPED
        self._listeners: list[Callable[[], None]] = []
        self._reregistering: asyncio.Task[Any] | None = None
        """Registering with a bluetoothd that came back (``_bluez_owner_changed``), until it is done."""
        self.runner = LoopThread("voxkey-bluetooth")
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
        self.pairing_mode = PairingMode(self.session, self.runner, lambda: self.enforcer.evaluate(), clock)
        self.advertiser = Advertiser(self.session, settings.name)
        self.mirror = DeviceMirror(
            self.adapter_path,
            MirrorEvents(
                changed=lambda: self._spawn(self.enforcer.evaluate()),
                powered=lambda powered: self._spawn(self.enforcer.adapter_powered(powered)),
                bluez_present=lambda present: self._spawn(self._bluez_owner_changed(present)),
                pairing_aborted=self.pairing_mode.attempt_failed,
            ),
        )
        self.enforcer = PolicyEnforcer(
            settings,
            self.session,
            self.mirror,
            self.pairing_mode,
            self.advertiser,
            subscribed=lambda: bool(self.app.input_report.notifying),
            decided=self._decided,
        )
        self.agent = PairingAgent(
            AGENT_PATH,
            lambda: self.pairing,
            self.host_allowed,
            lambda: self.pairing_mode.attempt_failed("a host", "it cancelled"),
            method=settings.pairing,
        )

    # ----------------------------------------------------------------- public, thread-safe

    @property
    def state(self) -> BluetoothState:
        return self._state

    @property
    def pairing(self) -> bool:
        """Pairing mode is on (a plain flag, so any thread may read it)."""
        return self.pairing_mode.active

    def add_listener(self, listener: Callable[[], None]) -> None:
        """``listener()`` runs (on the D-Bus thread) whenever hosts, subscriptions or LEDs change."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Connect to BlueZ and register everything; raises ``BluetoothError`` if that fails."""
        if self.runner.started:
            return
        self.session.closing = False
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
        self.runner.submit(self.pairing_mode.close(None)).result(timeout=10)

    def set_passkey_source(self, source: PasskeySource | None) -> None:
        """Where the passkey a host shows comes from (``bluetooth.pairing: passkey``); see ``agent``."""
        self.agent.passkey_source = source

    @property
    def pairing_window(self) -> PairingWindow | None:
        """The current or last pairing window (``pairing``), for its failed attempts."""
        return self.pairing_mode.window

    def ready_host(self) -> DeviceView | None:
        """The bonded, connected host that subscribed to key reports, if there is one."""
        with self.mirror.lock:
            if not self.session.registered:
                return None
            return self.enforcer.decide(list(self.mirror.devices.values())).ready

    @property
    def host_arrived_at(self) -> float:
        """``time.monotonic()`` when a host last subscribed or (re)attached: the link lets it settle first."""
        return self.mirror.host_arrived_at

    def notify_input(self, report: bytes) -> None:
        """Queue one key report for the subscribed host (delivery is tracked by the link)."""
        self.runner.call_soon(self._emit, report)

    @property
    def consumer_subscribed(self) -> bool:
        """Whether the host asked for media-key reports (a host that only wants text may not)."""
        return bool(self.app.consumer_input.notifying)

    def notify_consumer(self, usage: int) -> None:
        self.runner.call_soon(self.app.consumer_input.notify, consumer_report(usage))

    @property
    def devices(self) -> dict[str, DeviceView]:
        """BlueZ's devices on our adapter by object path (``mirror``); hold ``mirror.lock`` to iterate."""
        return self.mirror.devices

    def hosts(self) -> list[DeviceView]:
        with self.mirror.lock:
            return [device for device in self.mirror.devices.values() if device.is_bonded_host]

    def host_allowed(self, device_path: str) -> bool:
        """Bonded hosts always; in pairing mode also the host that is pairing right now.

        A host reads the HID characteristics as soon as the link is encrypted,
        which is before BlueZ reports the bond and before we mark it Trusted
        (BlueZ 5.82's hog read HID Information and Protocol Mode in that gap
        and was refused). Outside pairing mode no host can get that far: the
        characteristics need encryption and the adapter is not pairable.
        """
        device = self.mirror.devices.get(device_path)
        if device is None:
            return False
        return device.is_bonded_host or (self.pairing and device.connected)

    # ----------------------------------------------------------------- lifecycle (loop thread)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        self.runner.spawn(coroutine)

    async def _connect(self) -> None:
        bus = self.session.bus = await bluez.connect_system_bus()
        bus.add_message_handler(self.advertiser.answer_object_manager)
        await self.mirror.subscribe(bus)
        self.app.export(bus)
        bus.export(AGENT_PATH, self.agent)
        await self._register_with_bluez()

    async def _register_with_bluez(self) -> None:
        bus = self.session.require_bus()
        owner = await bluez.name_owner(bus)
        if owner is None:
            raise BluetoothError("bluetoothd is not on the system D-Bus; is it running? (systemctl status bluetooth)")
        await bluez.adapter_path(bus, self.settings.adapter)
        adapter = self.adapter_path
        await self.session.set("Powered", Variant("b", True))
        self.session.powered = True
        await self.session.set("Alias", Variant("s", self.settings.name))
        await self.session.set("Pairable", Variant("b", self.pairing))
        await self.session.set("PairableTimeout", Variant("u", 0))
        # Know the bonded hosts before the service exists: a bonded host that is still connected
        # reads it at once, and was refused while the list was empty.
        self.mirror.load(await bluez.managed_objects(bus))
        try:  # to that bluetoothd: if another took its place meanwhile, this fails (and a restart retries)
            await bluez.call(
                bus, adapter, bluez.GATT_MANAGER, "RegisterApplication", "oa{sv}", [APP_ROOT, {}], destination=owner
            )
            await bluez.call(
                bus,
                "/org/bluez",
                bluez.AGENT_MANAGER,
                "RegisterAgent",
                "os",
                [AGENT_PATH, self.agent.capability],
                destination=owner,
            )
            await bluez.call(
                bus, "/org/bluez", bluez.AGENT_MANAGER, "RequestDefaultAgent", "o", [AGENT_PATH], destination=owner
            )
        except DBusError as exc:
            raise BluetoothError(f"BlueZ refused voxkey's keyboard service: {exc.text or exc.type}") from exc
        self.session.owner = owner
        log.info("bluetooth: keyboard %r registered on %s", self.settings.name, self.settings.adapter)
        await self.enforcer.evaluate()

    async def _start_pairing(self, timeout_s: float) -> str | None:
        result = await self.pairing_mode.open(timeout_s)
        how = "and enter the code it shows" if self.settings.pairing == "passkey" else "(no code: Just Works)"
        log.info(
            "bluetooth: pairing mode on for %.0f s: pair with %r from the host %s", timeout_s, self.settings.name, how
        )
        await self.enforcer.evaluate()
        return await asyncio.wrap_future(result)

    async def _bluez_owner_changed(self, present: bool) -> None:
        self.session.owner = None
        self.advertiser.forget()
        if self._reregistering is not None:
            self._reregistering.cancel()  # for the bluetoothd before this one
            self._reregistering = None
        if not present:
            log.warning("bluetooth: bluetoothd left the bus; waiting for it to come back")
            self.mirror.clear()
            self._set_state(BluetoothState.STARTING)
            self._notify_listeners()
            return
        log.info("bluetooth: bluetoothd is back; registering the keyboard again")
        self._reregistering = asyncio.current_task()
        try:
            await self._register_until_done()
        finally:
            if self._reregistering is asyncio.current_task():
                self._reregistering = None

    async def _register_until_done(self) -> None:
        """Register with the bluetoothd that came back, for as long as it takes.

        A keyboard that gives up stays silent until it is restarted: the adapter may still be
        rfkill-blocked or resetting when bluetoothd is back, and its power can return minutes later.
        """
        attempt = 0
        while True:
            try:
                await self._register_with_bluez()
                return
            except (BluetoothError, DBusError) as exc:
                attempt += 1
                report = log.error if attempt == REREGISTER_LOUD_AFTER else log.debug
                report("bluetooth: cannot register with the restarted bluetoothd yet (%s); still trying", exc)
                slow = attempt >= REREGISTER_LOUD_AFTER
                await asyncio.sleep(REREGISTER_SLOW_RETRY_S if slow else REREGISTER_RETRY_S)

    async def _shutdown(self) -> None:
        bus = self.session.bus
        if bus is None:
            return
        self.session.closing = True
        if self.pairing:
            await self.pairing_mode.close(None)
        if self._reregistering is not None:
            self._reregistering.cancel()
        await self.advertiser.set(None)
        await self._disconnect_all()
        if self.session.owner is not None:
            for path, interface, member, body in (
                (self.adapter_path, bluez.GATT_MANAGER, "UnregisterApplication", [APP_ROOT]),
                ("/org/bluez", bluez.AGENT_MANAGER, "UnregisterAgent", [AGENT_PATH]),
            ):
                try:
                    await bluez.call(bus, path, interface, member, "o", body, destination=self.session.owner)
                except DBusError as exc:
                    log.debug("bluetooth: %s: %s", member, exc.text)
        self.session.owner = None
        self._set_state(BluetoothState.STOPPED)
        bus.disconnect()
        self.session.bus = None

    async def _disconnect_all(self) -> None:
        """Leave as a keyboard that lost power does: the link goes first, the HID service after.

        Unregistering the GATT application while a host is connected makes
        BlueZ tell that host the HID service is gone (Service Changed). Linux's
        hog then drops voxkey as a keyboard and stops reconnecting to it by
        itself (seen in the test guest: no reconnection after a restart). A host
        that is disconnected first keeps its cached services and reconnects when
        voxkey advertises again.
        """
        for device in self.mirror.snapshot():
            if device.connected:
                await self.session.disconnect(device)

    # ----------------------------------------------------------------- GATT callbacks and what the outside sees

    def _emit(self, report: bytes) -> None:
        self.app.input_report.notify(report)

    def _on_output_report(self, value: bytes) -> None:
        self.leds = value[0]
        self._notify_listeners()

    def _on_notifying(self, uuid: str, notifying: bool) -> None:
        if notifying:
            self.mirror.host_arrived()
        self._refresh()

    def _refresh(self) -> None:
        if self.runner.loop is not None:
            self._spawn(self.enforcer.evaluate())

    def _decided(self, state: BluetoothState) -> None:
        self._set_state(state)
        self._notify_listeners()

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
