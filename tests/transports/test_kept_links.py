"""What the links tell ``voxkey.kept`` about the host, and how they keep to its answer.

USB: the enumeration the host is (the UDC leaving configured/suspended is a
new one). Bluetooth: reports kept for a host that left go to that host only,
unless the user tapped; dropped, they are gone. ``HostLink``: a host leaving
mid-text starts the absence, even when the other link has a host at once.
"""

from __future__ import annotations

import os
import select
import time
from pathlib import Path

import pytest

from tests.transports.test_bluetooth import FakeRadio
from voxkey.clock import ManualClock
from voxkey.errors import HostUnavailableError, KeptTextDropped
from voxkey.hid import RELEASE_ALL
from voxkey.kept import KeptText, Resume, ResumePolicy
from voxkey.keymap import Layout, decode, encode
from voxkey.transports.base import Keyboard, LinkDown
from voxkey.transports.bluetooth.devices import DeviceView
from voxkey.transports.bluetooth.link import BluetoothLink
from voxkey.transports.host import HostLink
from voxkey.transports.usb import UsbHidLink

US = Layout.load("us")
A, B = "AA:AA:AA:AA:AA:AA", "BB:BB:BB:BB:BB:BB"


# ----------------------------------------------------------------------------- USB


@pytest.mark.parametrize(
    ("states", "same_enumeration"),
    [
        (["configured", "configured"], True),
        (["suspended", "configured"], True),  # the host slept: the time rule decides
        (["not attached", "configured"], False),  # unplugged, plugged (into this or another computer)
        (["default", "addressed", "configured"], False),  # the host reset the gadget
    ],
)
def test_usb_host_id_changes_when_the_udc_leaves_configured_or_suspended(
    tmp_path: Path, states: list[str], same_enumeration: bool
) -> None:
    device, state = tmp_path / "hidg0", tmp_path / "state"
    device.touch()
    state.write_text("configured\n")
    link = UsbHidLink(device, state, settle_s=0)
    before = link.host_id()
    for value in states:
        state.write_text(f"{value}\n")
        seen = link.host_id()
        assert (seen is None) is (value != "configured")
    assert before is not None
    assert (link.host_id() == before) is same_enumeration


def test_usb_link_dropped_by_f_hid_counts_as_a_new_enumeration(tmp_path: Path) -> None:
    device, state = tmp_path / "hidg0", tmp_path / "state"
    device.touch()
    state.write_text("configured\n")
    link = UsbHidLink(device, state, settle_s=0)
    before = link.host_id()
    link._link_lost("write: Cannot send after transport endpoint shutdown", completion_seen=True)
    assert link.host_id() != before  # the UDC still reads configured: it re-enumerated between two looks


class SleepingHost:
    """``select.poll`` for a host that leaves the queued report unread for ``asleep_s``, then polls again."""

    def __init__(self, clock: ManualClock, asleep_s: float) -> None:
        self.clock, self.asleep_until = clock, clock.now() + asleep_s

    def register(self, fd: int, events: int) -> None:
        return None

    def poll(self, timeout_ms: float) -> list[tuple[int, int]]:
        if self.clock.now() < self.asleep_until:
            self.clock.advance(timeout_ms / 1000)
            return []
        return [(0, select.POLLOUT)]


def sleeping_usb_host(tmp_path: Path, clock: ManualClock) -> tuple[Path, UsbHidLink]:
    device, state = tmp_path / "hidg0", tmp_path / "state"
    device.touch()
    state.write_text("configured\n")  # dummy_hcd and some UDCs never show "suspended" (kernel case usb.host_suspends)
    return device, UsbHidLink(device, state, settle_s=0, clock=clock.now)


def reports_in(device: Path) -> list[bytes]:
    data = device.read_bytes()
    return [data[i : i + 8] for i in range(0, len(data), 8)]


@pytest.mark.parametrize(("asleep_s", "typed_by_itself"), [(3.0, True), (60.0, False)])
def test_a_usb_host_that_sleeps_mid_text_gets_the_rest_only_as_the_kept_text_rule_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, asleep_s: float, typed_by_itself: bool
) -> None:
    """A laptop put to sleep mid-sentence may wake to its lock screen: after 60 s the rest waits for a tap."""
    clock = ManualClock()
    device, link = sleeping_usb_host(tmp_path, clock)
    kept = KeptText(ResumePolicy(5), clock)
    keyboard = Keyboard(HostLink([link], lambda waiting: None, kept), US, host_wait_s=0.3)
    real_write, writes = os.write, []

    def sleep_once_a_is_pressed(fd: int, data: bytes) -> int:
        writes.append(data)
        if len(writes) == 2:  # the link's first keys-up, then "a" pressed: the host sleeps before reading it
            host = SleepingHost(clock, asleep_s)
            monkeypatch.setattr(select, "poll", lambda: host)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", sleep_once_a_is_pressed)
    if typed_by_itself:
        keyboard.type("ab")
        assert decode(reports_in(device), US) == "ab" and not kept.held
        return
    with pytest.raises(HostUnavailableError):
        keyboard.type("ab")
    assert decode(reports_in(device), US) == "a"  # "b" waits for a tap ...
    assert reports_in(device)[-1] == RELEASE_ALL  # ... and no key is left down on the waking host
    assert kept.held and keyboard.pending_text == "b"


def test_a_key_a_usb_host_got_on_waking_is_let_go_before_the_text_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A press read only on waking is a key held down on the waking host: it would auto-repeat there."""
    clock = ManualClock()
    device, link = sleeping_usb_host(tmp_path, clock)
    x_down, y_down = encode("x", US)[0], encode("y", US)[0]
    link.send(x_down, None)
    host = SleepingHost(clock, 60.0)
    monkeypatch.setattr(select, "poll", lambda: host)
    with pytest.raises(LinkDown) as raised:
        link.send(y_down, None)
    assert raised.value.away_s >= 60.0 and raised.value.previous_delivered  # "x" reached it on waking
    assert reports_in(device)[-2:] == [x_down, RELEASE_ALL]  # let go at once; "y" was not sent


# ----------------------------------------------------------------------------- Bluetooth


class TwoHostRadio(FakeRadio):
    """``FakeRadio`` whose host can be another one (another address) when it comes back."""

    def __init__(self) -> None:
        super().__init__()
        self.address = A

    def ready_host(self) -> DeviceView | None:
        host = super().ready_host()
        return None if host is None else DeviceView(**{**host.__dict__, "address": self.address})

    def come_back(self, address: str) -> None:
        self.address = address
        self.host_back()


def dropped_mid_text(radio: TwoHostRadio, kept: KeptText | None = None) -> tuple[BluetoothLink, list[bytes]]:
    """Four reports written to host A, the first acknowledged, then A's link drops: three kept to replay."""
    link = BluetoothLink(radio, window=8)  # type: ignore[arg-type]
    link.kept = kept
    reports = encode("xyz", US)
    for report in reports[:4]:
        link.send(report, deadline=None)
    link.pacer.delivered(None, reports[0])
    radio.connected = False
    link.pacer.lost(A)
    assert list(link.pacer.replay) == reports[1:4]
    return link, reports


def test_without_the_daemon_reports_kept_for_one_host_never_go_to_another() -> None:
    radio = TwoHostRadio()
    link, reports = dropped_mid_text(radio)
    radio.come_back(B)
    with pytest.raises(HostUnavailableError):
        link.send(reports[4], deadline=time.monotonic() + 0.3)
    assert radio.sent == reports[:4]  # B got nothing: not A's rest, not what follows it
    radio.come_back(A)
    link.send(reports[4], deadline=time.monotonic() + 1)
    assert radio.sent == reports[:4] + reports[1:5]


def test_the_same_host_back_soon_gets_its_reports_again_by_itself() -> None:
    radio, clock = TwoHostRadio(), ManualClock()
    kept = KeptText(ResumePolicy(5), clock)
    kept.host_ready(f"bluetooth:{A}")
    link, reports = dropped_mid_text(radio, kept)
    with pytest.raises(HostUnavailableError):
        link.send(reports[4], deadline=time.monotonic() + 0.1)  # no host: the absence starts
    clock.advance(4)
    radio.come_back(A)
    link.send(reports[4], deadline=time.monotonic() + 1)
    assert radio.sent == reports[:4] + reports[1:5]


@pytest.mark.parametrize(("address", "away_s"), [(B, 0.0), (A, 6.0)])
def test_another_host_or_a_long_absence_holds_the_reports_until_a_tap(address: str, away_s: float) -> None:
    radio, clock = TwoHostRadio(), ManualClock()
    held: list[bool] = []
    kept = KeptText(ResumePolicy(5), clock, held.append)
    kept.host_ready(f"bluetooth:{A}")
    link, reports = dropped_mid_text(radio, kept)
    with pytest.raises(HostUnavailableError):
        link.send(reports[4], deadline=time.monotonic() + 0.1)
    clock.advance(away_s)
    radio.come_back(address)
    with pytest.raises(HostUnavailableError, match="not the one the kept text is for"):
        link.send(reports[4], deadline=time.monotonic() + 0.3)
    assert radio.sent == reports[:4] and held == [True]
    assert kept.accept()  # the user's tap
    link.send(reports[4], deadline=time.monotonic() + 1)
    assert radio.sent == reports[:4] + reports[1:5] and held == [True, False]


def test_dropped_kept_reports_are_gone() -> None:
    radio, clock = TwoHostRadio(), ManualClock()
    kept = KeptText(ResumePolicy(5), clock)
    kept.host_ready(f"bluetooth:{A}")
    link, reports = dropped_mid_text(radio, kept)
    radio.come_back(B)
    with pytest.raises(HostUnavailableError):
        link.send(reports[4], deadline=time.monotonic() + 0.1)
    assert kept.drop("double press")
    with pytest.raises(KeptTextDropped):
        link.send(reports[4], deadline=time.monotonic() + 1)
    assert link.discard_kept() == reports[1:4]
    kept.settled()
    link.send(RELEASE_ALL, deadline=time.monotonic() + 1)  # the next text: to B, without A's rest
    assert radio.sent == [*reports[:4], RELEASE_ALL]


# ----------------------------------------------------------------------------- HostLink, transport: both


class Wire:
    """A link with a host that can leave after a number of reports."""

    def __init__(self, name: str, leave_after: int | None = None) -> None:
        self.name = name
        self.reports: list[bytes] = []
        self.present = True
        self.leave_after = leave_after

    def host_id(self) -> str | None:
        return "0" if self.present else None

    def wait_for_host(self, deadline: float | None) -> None:
        if not self.present:
            raise HostUnavailableError(f"{self.name} away")

    def send(self, report: bytes, deadline: float | None) -> None:
        if not self.present:
            raise LinkDown("gone", previous_delivered=True)
        self.reports.append(report)
        if self.leave_after is not None and len(self.reports) >= self.leave_after:
            self.present = False

    def led_state(self) -> int:
        return 0

    def release_all(self) -> None:
        return None

    def close(self) -> None:
        return None


def test_with_both_links_text_of_a_host_that_left_does_not_fall_over_to_the_other_host() -> None:
    usb, bluetooth = Wire("usb", leave_after=1), Wire("bluetooth")
    kept = KeptText(ResumePolicy(5), ManualClock())
    host = HostLink([usb, bluetooth], lambda waiting: None, kept)  # type: ignore[list-item]
    host.wait_for_host(None)
    with pytest.raises(LinkDown):
        for report in encode("ab", US):
            host.send(report, None)
    with pytest.raises(HostUnavailableError):
        host.wait_for_host(time.monotonic() + 0.3)
    assert bluetooth.reports == [] and kept.held
    assert kept.accept()
    host.wait_for_host(time.monotonic() + 1)
    assert host.active is bluetooth
    assert kept.host_ready("bluetooth:0") is Resume.TYPE


def test_characters_whose_presses_were_kept_for_a_host_and_dropped_do_not_count_as_delivered() -> None:
    """Undo erases what the host got: "a" arrived; "b" and "c" were written, never acknowledged, then dropped."""
    radio = TwoHostRadio()
    kept = KeptText(ResumePolicy(5), ManualClock())
    link = BluetoothLink(radio, window=16)  # type: ignore[arg-type]
    keyboard = Keyboard(HostLink([link], lambda waiting: None, kept), US, host_wait_s=5)
    keyboard.type("abc")
    assert keyboard.delivered_chars == 3  # written counts as sent
    link.pacer.delivered(A, radio.sent[0])
    link.pacer.delivered(A, radio.sent[1])  # "a": press and release acknowledged
    radio.connected = False
    link.pacer.lost(A)
    radio.come_back(B)
    assert kept.drop("double press") is False  # nothing waited yet: the link has not looked
    with pytest.raises(HostUnavailableError):
        link.wait_for_host(time.monotonic() + 0.1)  # held: another host
    assert kept.drop("double press")
    with pytest.raises(KeptTextDropped):
        keyboard.type("d")
    reports = link.discard_kept()
    assert keyboard.unsend(reports) == "bc"
    assert keyboard.delivered_chars == 1
    assert keyboard.discard_pending() == "d"


def test_a_kept_release_alone_leaves_its_character_delivered() -> None:
    keyboard = Keyboard(Wire("usb"), US)  # type: ignore[arg-type]
    keyboard.type("ab")
    assert keyboard.unsend([RELEASE_ALL]) == ""  # only "b"'s release: its press arrived
    assert keyboard.unsend([bytes([0, 0, 99, 0, 0, 0, 0, 0]), RELEASE_ALL]) == ""  # not this keyboard's reports
    assert keyboard.delivered_chars == 2
