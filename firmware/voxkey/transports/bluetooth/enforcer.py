"""Carrying out ``policy.decide`` over D-Bus: bond the new host, drop strangers, advertise, show the state.

The rules themselves are pure (``policy``); this is the part that has to wait
on BlueZ, and therefore the part that must not run twice at once: signals
arrive in bursts, and two interleaved evaluations registered the
advertisement twice. Runs on the peripheral's loop thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from voxkey.transports.bluetooth.adapter import AdapterSession
from voxkey.transports.bluetooth.advertising import Advertiser
from voxkey.transports.bluetooth.devices import DeviceView
from voxkey.transports.bluetooth.mirror import DeviceMirror
from voxkey.transports.bluetooth.pairing import PairingMode
from voxkey.transports.bluetooth.policy import Decision, decide
from voxkey.transports.bluetooth.settings import BluetoothSettings, BluetoothState

log = logging.getLogger(__name__)


@dataclass
class PolicyEnforcer:
    """Looks at the mirrored devices after every change and makes BlueZ match what the policy decides."""

    settings: BluetoothSettings
    session: AdapterSession
    mirror: DeviceMirror
    pairing: PairingMode
    advertiser: Advertiser
    subscribed: Callable[[], bool]
    """Whether a host subscribed to the key input report (read from the GATT application)."""
    decided: Callable[[BluetoothState], None]
    """Told the state after every evaluation (the peripheral shows it and wakes its listeners)."""
    _evaluating: asyncio.Lock | None = field(default=None, init=False)
    """Made on first use: a lock belongs to the loop it was first awaited on."""

    def decide(self, devices: list[DeviceView]) -> Decision:
        return decide(
            devices,
            pairing=self.pairing.active,
            powered=self.session.powered,
            preferred=self.settings.preferred_host,
            subscribed=self.session.registered and self.subscribed(),
        )

    async def evaluate(self) -> None:
        """Apply the rules: bond new hosts in pairing mode, drop strangers, advertise when useful.

        Serialized (see the module docstring).
        """
        if self.session.closing:  # the rules are for a running keyboard; shutdown makes its own changes
            return
        if self._evaluating is None:
            self._evaluating = asyncio.Lock()
        async with self._evaluating:
            await self.evaluate_locked()

    async def evaluate_locked(self) -> None:
        """One evaluation; the caller holds the evaluation lock (or is a test driving it step by step)."""
        if self.session.bus is None or not self.session.registered:
            return
        devices = self.mirror.snapshot()
        self.mirror.report_unusable(devices)
        decision = self.decide(devices)
        if decision.bond is not None:
            await self.session.trust(decision.bond)
            await self.pairing.close(decision.bond.address, reevaluate=False)
            await self.evaluate_locked()
            return
        for device in decision.strangers:
            log.warning("bluetooth: %s is not a bonded host and voxkey is not pairing; disconnecting", device.address)
            await self.session.disconnect(device)
        for device in decision.displaced:
            log.info(
                "bluetooth: preferred host %s is here; disconnecting %s", self.settings.preferred_host, device.address
            )
            await self.session.disconnect(device)
        with self.mirror.lock:  # the disconnections above took a while: advertise and show what is true now
            decision = self.decide(list(self.mirror.devices.values()))
        await self.advertiser.set(decision.advertise)
        self.decided(decision.state)

    async def adapter_powered(self, powered: bool) -> None:
        """The radio went off (rfkill, a controller reset) or came back: the rules decide the advertising.

        Found in the test guest: after an rfkill block BlueZ refused the
        advertisement, and with none registered the bonded host never found
        voxkey again once the radio was back. With the radio off the
        evaluation unregisters it; when power returns it registers a new one.
        """
        if powered == self.session.powered:
            return
        self.session.powered = powered
        if not powered:
            log.warning(
                "bluetooth: %s was powered off (rfkill or a controller reset?); waiting for it", self.settings.adapter
            )
        else:
            log.info("bluetooth: %s is powered again", self.settings.adapter)
        await self.evaluate()
