"""``HostLink``: which of several links gets the text (``transport: both``)."""

from __future__ import annotations

import time

import pytest

from tests.hosts import CaptureLink
from voxkey.errors import TransportError
from voxkey.transports.host import HostLink

A_PRESSED = bytes([0, 0, 4, 0, 0, 0, 0, 0])


class RefusedBluetoothHost(CaptureLink):
    """A connected host whose Bluetooth stack drops key reports (BlueZ 5.55-5.66): its link refuses it."""

    name = "bluetooth"

    def wait_for_host(self, deadline: float | None) -> None:
        raise TransportError("Bluetooth host AA:BB:CC:DD:EE:FF: its BlueZ 5.66 drops key reports")


def test_with_both_transports_a_refused_bluetooth_host_leaves_the_text_to_the_usb_host() -> None:
    """The refusal used to end the typing although the USB host could take every key."""
    refused, usb = RefusedBluetoothHost(), CaptureLink()
    link = HostLink([refused, usb], on_waiting=lambda waiting: None)
    link.wait_for_host(time.monotonic() + 1)
    link.send(A_PRESSED, None)
    assert link.active is usb
    assert usb.reports == [A_PRESSED] and refused.reports == []


def test_a_refused_host_with_no_other_host_is_an_error_at_once_not_a_wait() -> None:
    waits: list[bool] = []
    link = HostLink([RefusedBluetoothHost(), CaptureLink(present=False)], on_waiting=waits.append)
    started = time.monotonic()
    with pytest.raises(TransportError, match="drops key reports"):
        link.wait_for_host(started + 30)
    assert time.monotonic() - started < 10  # not the 30 s deadline
    assert waits == []  # never shown as "waiting for the host": the host is there and refused
