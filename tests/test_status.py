"""Which light shows for which state of the daemon: a pure function, checked as a priority table."""

from __future__ import annotations

import dataclasses

import pytest

from voxkey.status import Counters, Snapshot, light_state, status_text
from voxkey.ui import LightState

EVERYTHING = Snapshot(
    listening=True,
    passkey_wanted=True,
    pairing=True,
    text_held=True,
    waiting_for_host=True,
    typing=True,
    in_flight=True,
    error_until=10.0,
    now=5.0,
)

PRIORITY = [
    ("listening", LightState.LISTENING),
    ("passkey_wanted", LightState.SAY_CODE),
    ("pairing", LightState.PAIRING),
    ("text_held", LightState.TEXT_WAITING),  # held text asks for a press: it must not look like mere waiting
    ("waiting_for_host", LightState.WAITING_FOR_HOST),
    ("typing", LightState.TYPING),
    ("in_flight", LightState.TRANSCRIBING),
]
"""Each state wins over everything below it: listening shows even while typing the dictation before."""


@pytest.mark.parametrize("rank", range(len(PRIORITY)), ids=[name for name, _ in PRIORITY])
def test_each_state_wins_over_the_ones_below_it(rank: int) -> None:
    above = {name: False for name, _ in PRIORITY[:rank]}
    snapshot = dataclasses.replace(EVERYTHING, **above)
    assert light_state(snapshot) is PRIORITY[rank][1]


def test_an_error_shows_until_its_time_is_up_when_nothing_else_goes_on() -> None:
    assert light_state(Snapshot(error_until=10.0, now=9.99)) is LightState.ERROR
    assert light_state(Snapshot(error_until=10.0, now=10.0)) is LightState.IDLE
    assert light_state(Snapshot(error_until=10.0, now=9.0, typing=True)) is LightState.TYPING


def test_idle_with_the_speech_server_down_says_the_pi_transcribes() -> None:
    """asr.remote is on and its server is gone: the user sees that dictation runs on the device meanwhile."""
    assert light_state(Snapshot(speech_server_down=True)) is LightState.ON_DEVICE
    assert light_state(Snapshot(speech_server_down=True, listening=True)) is LightState.LISTENING
    assert light_state(Snapshot(speech_server_down=True, error_until=10.0, now=5.0)) is LightState.ERROR


def test_nothing_going_on_is_idle() -> None:
    assert light_state(Snapshot()) is LightState.IDLE


def test_status_line_names_the_state_and_the_counts() -> None:
    counters = Counters(dictations=3, typed=2, cancelled=1, undone=1)
    assert status_text(LightState.TYPING, counters) == "typing; 3 dictations, 2 typed, 1 cancelled, 1 undone"
