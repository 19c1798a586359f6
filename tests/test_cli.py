import subprocess
import sys
import time
from pathlib import Path

import pytest

from voxkey.cli import MODULE_OF_COMMAND, build_parser, main, modules_for
from voxkey.transports import usb


def test_every_command_is_mapped_to_the_module_that_registers_it() -> None:
    parser = build_parser()
    registered = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert registered == set(MODULE_OF_COMMAND)
    for command, module in MODULE_OF_COMMAND.items():
        assert command in build_parser((module,))._subparsers._group_actions[0].choices  # type: ignore[union-attr]


def test_a_command_loads_only_its_own_module_and_help_loads_all() -> None:
    assert modules_for(["--debug", "type", "hi"]) == ("keyboard",)
    assert len(modules_for(["--help"])) == 4


def test_typing_does_not_import_speech_or_bluetooth_stacks() -> None:
    heavy = "{'numpy', 'pywhispercpp', 'dbus_fast', 'gpiozero'}"
    code = (
        "import sys; from voxkey.cli import main; main(['keys', 'a']); "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().endswith("[]")


def test_user_errors_are_one_line_with_a_nonzero_exit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "x", "--layout", "klingon"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("voxkey: error: unknown layout 'klingon'") and err.count("\n") == 1


def test_eject_without_bluetooth_is_refused_before_stdin_is_read(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class UnreadStdin:
        def read(self) -> str:
            raise AssertionError("stdin was read although the command could not run")

    monkeypatch.setattr(sys, "stdin", UnreadStdin())
    assert main(["type", "-", "--transport", "terminal", "--eject"]) != 0
    assert "--eject needs --transport bluetooth" in capsys.readouterr().err


def test_typing_over_usb_without_a_usb_device_controller_fails_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No UDC: no host can ever come, so waiting (60 s, saying "UDC state: configured") only hid the cause."""

    def no_waiting(seconds: float) -> None:
        raise AssertionError("voxkey type waited for a host that cannot come")

    monkeypatch.setattr(usb, "UDC_CLASS", tmp_path / "udc")  # this machine's /sys/class/udc: absent
    monkeypatch.setattr(time, "sleep", no_waiting)
    assert main(["type", "hi", "--transport", "usb", "--device", str(tmp_path / "nonexistent")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("voxkey: error: no USB device controller (UDC) in ") and err.count("\n") == 1
    assert "dtoverlay=dwc2" in err and "voxkey-gadget up" in err
