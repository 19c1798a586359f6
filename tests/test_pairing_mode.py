"""Pairing mode as the button sees it: on, off by a press, or ended by BlueZ, with stale ends ignored."""

from __future__ import annotations

import concurrent.futures

import pytest

from voxkey.errors import BluetoothError, TransportError
from voxkey.transports.host import PairingEnded, PairingMode


class Bluetooth:
    """The pairing control of a Bluetooth link: each start's future is done when that pairing mode ends."""

    def __init__(self) -> None:
        self.futures: list[concurrent.futures.Future[str | None]] = []
        self.stops = 0

    def start_pairing(self) -> concurrent.futures.Future[str | None]:
        self.futures.append(concurrent.futures.Future())
        return self.futures[-1]

    def stop_pairing(self) -> None:
        self.stops += 1
        if not self.futures[-1].done():
            self.futures[-1].set_result(None)


def mode() -> tuple[PairingMode, Bluetooth, list[PairingEnded]]:
    events: list[PairingEnded] = []
    pairing = PairingMode(events.append)
    bluetooth = Bluetooth()
    pairing.control = bluetooth
    return pairing, bluetooth, events


def test_without_bluetooth_there_is_no_pairing_mode() -> None:
    pairing = PairingMode(lambda event: None)
    with pytest.raises(TransportError, match=r"needs output\.transport bluetooth or both"):
        pairing.start()
    assert not pairing.active


def test_bluez_ending_pairing_mode_arrives_as_an_event_that_ends_it() -> None:
    pairing, bluetooth, events = mode()
    pairing.start()
    assert pairing.active and events == []
    bluetooth.futures[-1].set_result("AA:BB:CC:DD:EE:FF")  # a host bonded
    assert events == [PairingEnded(1)]
    assert pairing.ended(events[0]) and not pairing.active


def test_the_end_of_a_mode_the_button_left_already_changes_nothing() -> None:
    pairing, bluetooth, events = mode()
    pairing.start()
    pairing.stop()
    assert bluetooth.stops == 1 and not pairing.active
    pairing.start()  # pairing again before the first end's event was handled
    assert not pairing.ended(events[0])  # the first mode's end is stale
    assert pairing.active
    bluetooth.futures[-1].set_result(None)  # this one times out
    assert pairing.ended(events[-1]) and not pairing.active


def test_a_pairing_mode_that_failed_says_why() -> None:
    pairing, bluetooth, events = mode()
    pairing.start()
    bluetooth.futures[-1].set_exception(BluetoothError("cannot set Pairable on hci0"))
    assert isinstance(events[0].error, BluetoothError)
    assert pairing.ended(events[0]) and not pairing.active
