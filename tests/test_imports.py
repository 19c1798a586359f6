"""Commands that need no speech or radio do not wait for them: what each one imports, in a fresh interpreter.

numpy, whisper (pywhispercpp) and D-Bus (dbus-fast) take seconds to import on a
Pi Zero; ``voxkey type`` over USB and reading the config's keyboard sections
must not load them, nor the Bluetooth stack.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
HEAVY = ("numpy", "pywhispercpp", "dbus_fast", "webrtcvad", "soxr", "voxkey.transports.bluetooth")


def modules_after(code: str) -> list[str]:
    """The heavy modules a fresh interpreter has loaded after running ``code``."""
    probe = f"""
import json, sys
{code}
heavy = {HEAVY!r}
print("\\n" + json.dumps(sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))))
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(FIRMWARE), os.environ.get("PYTHONPATH")])))
    env.pop("VOXKEY_CONFIG", None)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_config_loads_nothing_heavy() -> None:
    assert modules_after("import voxkey.config") == []


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
