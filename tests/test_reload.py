"""What a reloaded config reopens: only the parts whose own settings changed (reopening costs seconds or a host)."""

from __future__ import annotations

import dataclasses

import pytest

from voxkey.config import Config, LedSettings, OutputSettings
from voxkey.reload import ReloadPlan
from voxkey.speech_settings import AsrSettings, AudioSettings, VadSettings
from voxkey.transports.bluetooth.settings import BluetoothSettings

OLD = Config()


@pytest.mark.parametrize(
    ("change", "reopened"),
    [
        ({"vad": VadSettings(phrase_pause_ms=700)}, set()),  # read at each dictation: nothing to reopen
        ({"asr": AsrSettings(model="base.en-q5_1")}, {"engine"}),
        ({"output": OutputSettings(layout="de")}, {"output"}),
        ({"bluetooth": BluetoothSettings(name="desk keyboard")}, {"output"}),
        ({"leds": LedSettings(kind="none")}, {"light"}),
        ({"audio": AudioSettings(device="USB")}, {"microphone"}),
        ({"dictation": dataclasses.replace(OLD.dictation, keep_microphone_open=True)}, {"microphone"}),
        ({"button": dataclasses.replace(OLD.button, pin=27)}, {"buttons"}),
    ],
)
def test_a_reload_reopens_only_what_the_change_is_baked_into(change: dict[str, object], reopened: set[str]) -> None:
    plan = ReloadPlan.between(OLD, dataclasses.replace(OLD, **change))  # type: ignore[arg-type]
    assert {name for name, value in dataclasses.asdict(plan).items() if value} == reopened


def test_the_same_config_again_reopens_nothing() -> None:
    assert not any(dataclasses.asdict(ReloadPlan.between(OLD, Config())).values())
