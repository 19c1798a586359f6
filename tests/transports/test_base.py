"""Keyboard's exactly-once typing, against a link that drops at chosen reports.

The link below models what f_hid does on an unplug: the report being written
fails, and the report queued just before it either was cancelled, never
reaching the host, or had already been polled by it; the link says which.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxkey.errors import HostUnavailableError, UnsupportedCharacterError
from voxkey.hid import LED_CAPS_LOCK, RELEASE_ALL
from voxkey.keymap import Layout, decode
from voxkey.transports.base import Keyboard, LinkDown

US = Layout.load("us")


class UnpluggingLink:
    name = "test"

    def __init__(self, drop_at: set[int], leds: int = 0, previous_delivered: bool = False) -> None:
        self.drop_at = drop_at
        self.previous_delivered = previous_delivered
        self.attempts = 0
        self.host_reports: list[bytes] = []
        self.leds = leds
        self.released = False

    def wait_for_host(self, deadline: float | None) -> None:
        return None

    def send(self, report: bytes, deadline: float | None) -> None:
        self.attempts += 1
        if self.attempts in self.drop_at:
            if not self.previous_delivered and self.host_reports and self.host_reports[-1] != RELEASE_ALL:
                self.host_reports.pop()  # the queued press was cancelled by the unplug
            self.host_reports.append(RELEASE_ALL)  # the host releases keys of a vanished device
            raise LinkDown("unplugged", previous_delivered=self.previous_delivered)
        self.host_reports.append(report)

    def led_state(self) -> int:
        return self.leds

    def release_all(self) -> None:
        self.released = True

    def close(self) -> None:
        return None


@given(
    st.text(alphabet="abcAB !\n\t~", min_size=1, max_size=40),
    st.sets(st.integers(min_value=1, max_value=200), max_size=6),
    st.booleans(),
)
def test_unplugs_at_any_report_lose_and_repeat_nothing(text: str, drops: set[int], previous_delivered: bool) -> None:
    link = UnpluggingLink(drops, previous_delivered=previous_delivered)
    keyboard = Keyboard(link, US)
    keyboard.type(text)
    assert decode(link.host_reports, US) == text
    assert keyboard.pending_text == ""


def test_text_not_delivered_before_the_deadline_is_kept_and_sent_first_next_time() -> None:
    class AsleepLink(UnpluggingLink):
        asleep = True

        def send(self, report: bytes, deadline: float | None) -> None:
            if self.asleep and len(self.host_reports) == 3:
                raise HostUnavailableError("USB host asleep")
            super().send(report, deadline)

    link = AsleepLink(set())
    keyboard = Keyboard(link, US, host_wait_s=0.1)
    with pytest.raises(HostUnavailableError, match="3 characters kept"):
        keyboard.type("abcd")  # "a" delivered, "b" pressed but its release still waiting
    assert keyboard.pending_text == "bcd"
    link.asleep = False
    keyboard.type("e")
    assert decode(link.host_reports, US) == "abcde"


def test_caps_lock_is_read_per_character() -> None:
    link = UnpluggingLink(set(), leds=LED_CAPS_LOCK)
    Keyboard(link, US).type("Vox")
    assert decode(link.host_reports, US, caps_lock=True) == "Vox"


def test_untypable_text_is_refused_whole() -> None:
    link = UnpluggingLink(set())
    keyboard = Keyboard(link, US)
    with pytest.raises(UnsupportedCharacterError):
        keyboard.type("ok ☃")
    assert link.host_reports == [] and keyboard.pending_text == ""


def test_close_releases_all_keys() -> None:
    link = UnpluggingLink(set())
    Keyboard(link, US).close()
    assert link.released


def test_discarded_text_is_returned_and_never_typed() -> None:
    link = UnpluggingLink(set())
    keyboard = Keyboard(link, US)
    keyboard._pending.extend("later")
    assert keyboard.discard_pending() == "later"
    keyboard.flush()
    assert link.host_reports == []


@pytest.mark.parametrize(("previous_delivered", "retyped"), [(True, False), (False, True)])
def test_a_character_whose_press_reached_the_host_is_not_typed_again(previous_delivered: bool, retyped: bool) -> None:
    link = UnpluggingLink({4}, previous_delivered=previous_delivered)  # report 4: the release of "b"
    keyboard = Keyboard(link, US)
    keyboard.type("abc")
    # writes: "a" (2), the press of "b", its failed release, ["b" again (2)], "c" (2)
    assert link.attempts == (8 if retyped else 6)
    assert decode(link.host_reports, US) == "abc" and keyboard.delivered_chars == 3


def test_the_host_wait_bounds_time_without_progress_not_the_whole_text() -> None:
    class SlowLink(UnpluggingLink):
        def send(self, report: bytes, deadline: float | None) -> None:
            time.sleep(0.01)  # 20 ms a character: 30 characters take 0.6 s, six times the wait bound
            if deadline is not None and time.monotonic() > deadline:
                raise HostUnavailableError("the host did not poll in time")  # as UsbHidLink's wait does
            super().send(report, deadline)

    link = SlowLink(set())
    Keyboard(link, US, host_wait_s=0.1).type("a slow link still types it all")
    assert decode(link.host_reports, US) == "a slow link still types it all"
