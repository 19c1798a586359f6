"""The daemon's dealings with hosts besides typing, on the main loop's side: events in, what the gestures see."""

from __future__ import annotations

from typing import Any

from tests.test_pairing_mode import Bluetooth
from voxkey.clock import ManualClock
from voxkey.display import StatusDisplay
from voxkey.host_session import HostSession
from voxkey.kept import KeptText, ResumePolicy
from voxkey.notify import SystemdNotifier
from voxkey.status import Counters
from voxkey.transports.host import Links
from voxkey.typist import HostWaiting, TextHeld


def session() -> tuple[HostSession, list[Any], Counters]:
    posted: list[Any] = []
    clock = ManualClock()
    counters = Counters()
    display = StatusDisplay(SystemdNotifier(socket_path=""), clock, counters)
    hosts = HostSession(posted.append, KeptText(ResumePolicy(5.0), clock), display, counters)
    hosts.use(Links([], Bluetooth()))
    return hosts, posted, counters


def test_while_a_host_waits_for_its_code_a_press_records_it_instead_of_leaving_pairing_mode() -> None:
    hosts, posted, counters = session()
    hosts.start_pairing()
    assert hosts.pairing.active and hosts.pairing_gesture and counters.pairing == 1
    future = hosts.passkey.request("/org/bluez/hci0/dev_AA")  # the agent, on the Bluetooth thread
    hosts.handle(posted.pop())  # PasskeyWanted, on the loop
    assert hosts.passkey.waiting and not hosts.pairing_gesture
    hosts.code_heard("zero zero nine three nine one", hosts.passkey.pending)
    assert future.result(timeout=1) == "009391"
    hosts.handle(posted.pop())  # PasskeyWithdrawn: the request is answered
    assert hosts.pairing_gesture


def test_a_code_that_is_not_six_digits_keeps_the_request_open() -> None:
    hosts, posted, _ = session()
    hosts.start_pairing()
    future = hosts.passkey.request("/org/bluez/hci0/dev_AA")
    hosts.handle(posted.pop())
    hosts.code_heard("one two three", hosts.passkey.pending)
    assert not future.done() and hosts.passkey.waiting and hosts.passkey.misheard == 1


def test_the_typist_s_news_about_hosts_is_what_the_led_and_gestures_read() -> None:
    hosts, _, _ = session()
    hosts.handle(HostWaiting(True))
    hosts.handle(TextHeld(True))
    assert hosts.waiting_for_host and hosts.text_held
    hosts.handle(HostWaiting(False))
    hosts.handle(TextHeld(False))
    assert not hosts.waiting_for_host and not hosts.text_held


def test_stopping_ends_pairing_mode() -> None:
    hosts, _, _ = session()
    hosts.start_pairing()
    hosts.stop()
    assert not hosts.pairing.active
