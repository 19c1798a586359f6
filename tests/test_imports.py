"""Commands that need no speech or radio do not wait for them: what each one imports, in a fresh interpreter.

numpy, whisper (pywhispercpp) and D-Bus (dbus-fast) take seconds to import on a
Pi Zero; ``voxkey type`` over USB, ``voxkey config check`` (every section of the
config) and the start of ``voxkey doctor`` must not load them, nor the Bluetooth
stack. Doctor's own checks of the microphone and of the bonded hosts import
what they check, and only they do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
HEAVY = ("numpy", "pywhispercpp", "_pywhispercpp", "dbus_fast", "webrtcvad", "soxr", "voxkey.transports.bluetooth")
LIGHT = ("voxkey.transports.bluetooth", "voxkey.transports.bluetooth.settings")
"""The Bluetooth package's own ``__init__`` (lazy) and its settings: all a config needs of the stack."""

EVERY_SECTION = """\
button: {mode: hold, eject_gesture: triple-tap}
leds: {kind: rgb}
dictation: {auto_silence_s: 1.0}
audio: {max_recording_s: 60}
vad: {aggressiveness: 2}
asr: {model: tiny.en-q8_0, remote: {enabled: true, url: "tcp://192.168.1.20:10300"}}
commands: {disabled_phrases: [period], replacements: {vox key: voxkey}}
output: {transport: both}
usb: {device: /dev/hidg0}
bluetooth: {name: voxkey, preferred_host: "AA:BB:CC:DD:EE:FF"}
service: {log_level: debug}
"""
"""A config that sets every section, so each section's class is needed to read it."""


def modules_after(code: str) -> list[str]:
    """The heavy modules a fresh interpreter has loaded after running ``code``."""
    probe = f"""
import json, sys
{code}
heavy, light = {HEAVY!r}, {LIGHT!r}
loaded = (m for m in sys.modules if m not in light and any(m == h or m.startswith(h + ".") for h in heavy))
print("\\n" + json.dumps(sorted(loaded)))
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(FIRMWARE), os.environ.get("PYTHONPATH")])))
    env.pop("VOXKEY_CONFIG", None)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_config_loads_nothing_heavy() -> None:
    assert modules_after("import voxkey.config\nvoxkey.config.Config()") == []


def test_checking_a_config_with_every_section_loads_nothing_heavy(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(EVERY_SECTION)
    code = f"""
from voxkey.cli import main
assert main(["config", "check", {str(path)!r}]) == 0
import voxkey.config
config = voxkey.config.load({str(path)!r})
assert config.bluetooth.preferred_host == "AA:BB:CC:DD:EE:FF" and config.vad.aggressiveness == 2, config
"""
    assert modules_after(code) == []


def test_doctor_reads_its_config_before_loading_anything_heavy(tmp_path: Path) -> None:
    """``voxkey doctor`` imports its checks and reads the config as ``run_doctor`` does; only the checks load more."""
    path = tmp_path / "config.yaml"
    path.write_text(EVERY_SECTION)
    code = f"""
from voxkey.cli import build_parser, modules_for
from voxkey.cli.common import load_config
import voxkey.doctor
argv = ["doctor", "--config", {str(path)!r}]
args = build_parser(modules_for(argv)).parse_args(argv)
assert args.func.__name__ == "run_doctor", args.func
assert load_config(args).output.transport == "both"
"""
    assert modules_after(code) == []


def test_typing_over_usb_loads_neither_the_speech_nor_the_bluetooth_stack(tmp_path: Path) -> None:
    device = tmp_path / "hidg0"
    device.touch()
    code = f"""
from voxkey.cli import main
code = main(["type", "hi", "--transport", "usb", "--device", {str(device)!r}, "--wait", "0.5", "--config", "/dev/null"])
assert code in (0, 1), code
"""
    assert modules_after(code) == []


@pytest.mark.parametrize("command", [["keys", "hi"], ["type", "hi", "--transport", "terminal"]])
def test_keyboard_commands_load_nothing_heavy(command: list[str]) -> None:
    code = f"from voxkey.cli import main\nassert main({[*command, '--config', '/dev/null']!r}) == 0"
    assert modules_after(code) == []
