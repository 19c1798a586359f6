import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from voxkey import config
from voxkey.cli import MODULE_OF_COMMAND, build_parser, main, modules_for
from voxkey.errors import BluetoothError
from voxkey.keymap import Layout, encode
from voxkey.transports import usb


def test_every_command_is_mapped_to_the_module_that_registers_it() -> None:
    parser = build_parser()
    registered = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert registered == set(MODULE_OF_COMMAND)
    for command, module in MODULE_OF_COMMAND.items():
        assert command in build_parser((module,))._subparsers._group_actions[0].choices  # type: ignore[union-attr]


def test_a_command_loads_only_its_own_module_and_help_loads_all() -> None:
    assert modules_for(["--debug", "type", "hi"]) == ("keyboard",)
    assert len(modules_for(["--help"])) == 5


def test_typing_does_not_import_speech_or_bluetooth_stacks(tmp_path: Path) -> None:
    """Not even with a config that sets the speech and Bluetooth sections: ``keys``/``type`` read only theirs."""
    path = write_config(tmp_path, "asr:\n  model: base.en-q8_0\nvad:\n  aggressiveness: 2\nbluetooth:\n  name: vk\n")
    heavy = "{'numpy', 'pywhispercpp', 'dbus_fast', 'gpiozero', 'webrtcvad'}"
    code = (
        "import sys; from voxkey.cli import main; main(['keys', 'a']); main(['type', 'a', '--transport', 'terminal']); "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy}))"
    )
    env = {**os.environ, config.CONFIG_ENV: str(path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
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

    real_sleep = time.sleep

    def no_waiting(seconds: float) -> None:
        if threading.current_thread() is not threading.main_thread():
            return real_sleep(seconds)  # the kernel guests' background boot shares this module
        raise AssertionError("voxkey type waited for a host that cannot come")

    monkeypatch.setattr(usb, "UDC_CLASS", tmp_path / "udc")  # this machine's /sys/class/udc: absent
    monkeypatch.setattr(time, "sleep", no_waiting)
    assert main(["type", "hi", "--transport", "usb", "--device", str(tmp_path / "nonexistent")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("voxkey: error: no USB device controller (UDC) in ") and err.count("\n") == 1
    assert "dtoverlay=dwc2" in err and "voxkey-gadget up" in err


# --- every command reads the daemon's config, flags over it ------------------------------------------------------


@pytest.fixture(autouse=True)
def no_system_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever /etc/voxkey/config.yaml this machine has must not leak into the tests."""
    monkeypatch.setenv(config.CONFIG_ENV, str(tmp_path / "no-config-here.yaml"))


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "voxkey.yaml"
    path.write_text(text)
    return path


def keys_output(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["keys", *argv]) == 0
    return capsys.readouterr().out


def test_keys_uses_the_configured_layout_and_policy_unless_flags_say_otherwise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    german = keys_output(capsys, "zé", "--layout", "de", "--unsupported", "skip")
    us = keys_output(capsys, "zé", "--layout", "us", "--unsupported", "skip")
    assert german != us
    path = write_config(tmp_path, "output:\n  layout: de\n  unsupported_characters: skip\n")
    assert keys_output(capsys, "zé", "--config", str(path)) == german
    assert keys_output(capsys, "zé", "--config", str(path), "--layout", "us") == us


def test_a_wrong_flag_is_refused_like_a_wrong_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["keys", "a", "--unsupported", "guess"])
    assert "unsupported_characters must be one of" in capsys.readouterr().err
    assert main(["transcribe", "x.wav", "--threads", "0"]) == 2
    assert "asr.threads must be at least 1, not 0" in capsys.readouterr().err


def test_a_broken_config_stops_every_command_with_its_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A syntax error or an unknown section stops every command; a wrong value, each command that reads it."""
    keys, type_usb, type_bt = ["keys", "a"], ["type", "a"], ["type", "a", "--transport", "bluetooth"]
    pair, listing, forget, transcribe = ["pair"], ["hosts", "list"], ["hosts", "forget", "AA"], ["transcribe", "x"]
    every = [keys, type_usb, type_bt, pair, listing, forget, transcribe]
    cases = [
        ("output:\n  layout: de\n  transport: [usb\n", every, ":3: not valid YAML"),
        ("output:\n  layout: de\nbluetoth:\n  name: vk\n", every, ":3: unknown setting 'bluetoth' at the top level"),
        ("output:\n  layout: de\n  transport: pigeon\n", [keys, type_usb, type_bt], ":3: output.transport must be"),
        ("bluetooth:\n  adapter: hci0\n  name: ''\n", [type_bt, pair, listing, forget], ":3: bluetooth name ''"),
        ("asr:\n  language: en\n  threads: 0\n", [transcribe], ":3: asr.threads must be at least 1"),
    ]
    for text, commands, error in cases:
        path = write_config(tmp_path, text)
        for argv in commands:
            assert main([*argv, "--config", str(path)]) == 2, (text, argv)
            assert f"{path}{error}" in capsys.readouterr().err, (text, argv)


def fake_udc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """A /sys/class/udc with one configured controller, so a plain file can stand in for /dev/hidg0."""
    (tmp_path / "udc" / name).mkdir(parents=True)
    (tmp_path / "udc" / name / "state").write_text("configured\n")
    monkeypatch.setattr(usb, "UDC_CLASS", tmp_path / "udc")


def test_type_uses_the_configured_transport_gadget_and_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_udc(tmp_path, monkeypatch, "fe980000.usb")
    device = tmp_path / "hidg3"
    device.touch()
    monkeypatch.setenv(
        config.CONFIG_ENV,
        str(write_config(tmp_path, f"output:\n  layout: de\n  transport: usb\nusb:\n  device: {device}\n")),
    )
    assert main(["type", "zy", "--wait", "5"]) == 0
    data = device.read_bytes()
    reports = [data[i : i + 8] for i in range(0, len(data), 8)]
    assert reports == [bytes(8), *encode("zy", Layout.load("de"))]  # all keys up as the link starts
    assert reports != encode("zy", Layout.load("us"))


@pytest.fixture
def opened_links(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The settings every Bluetooth command hands to BlueZ, recorded instead of opening a keyboard."""
    from voxkey import transports

    seen: list[Any] = []

    def record(settings: Any) -> Any:
        seen.append(settings)
        raise BluetoothError("stopped by the test before BlueZ")

    monkeypatch.setattr(transports.bluetooth, "open_bluetooth_link", record)
    return seen


def test_pair_registers_the_configured_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opened_links: list[Any]
) -> None:
    path = write_config(tmp_path, "bluetooth:\n  name: vk-e2e\n  pairing_timeout_s: 30\n  adapter: hci1\n")
    monkeypatch.setenv(config.CONFIG_ENV, str(path))
    assert main(["pair"]) == 1
    assert main(["pair", "--config", str(path), "--name", "desk", "--timeout", "60"]) == 1
    first, second = opened_links
    assert (first.name, first.pairing_timeout_s, first.adapter) == ("vk-e2e", 30.0, "hci1")
    assert (second.name, second.pairing_timeout_s, second.adapter) == ("desk", 60.0, "hci1")


def test_type_over_bluetooth_uses_the_configured_settings_and_settle_time(
    tmp_path: Path, opened_links: list[Any]
) -> None:
    path = write_config(
        tmp_path,
        "output:\n  transport: both\n  prefer: bluetooth\n"
        "bluetooth:\n  name: vk-e2e\n  host_settle_s: 0.5\n  report_window: 4\n",
    )
    assert main(["type", "hi", "--config", str(path)]) == 1
    assert main(["type", "hi", "--config", str(path), "--host-settle", "3", "--window", "2"]) == 1
    first, second = opened_links
    assert (first.name, first.host_settle_s, first.report_window) == ("vk-e2e", 0.5, 4)
    assert (second.name, second.host_settle_s, second.report_window) == ("vk-e2e", 3.0, 2)


def test_hosts_list_uses_the_configured_adapter_and_preferred_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voxkey import transports

    asked: list[tuple[str, str | None]] = []

    def list_hosts(adapter: str, preferred: str | None) -> list[Any]:
        asked.append((adapter, preferred))
        return []

    monkeypatch.setattr(transports.bluetooth, "list_hosts", list_hosts)
    path = write_config(tmp_path, "bluetooth:\n  adapter: hci1\n  preferred_host: AA:BB:CC:DD:EE:FF\n")
    assert main(["hosts", "list", "--config", str(path)]) == 0
    assert main(["hosts", "list", "--config", str(path), "--adapter", "hci2"]) == 0
    assert asked == [("hci1", "AA:BB:CC:DD:EE:FF"), ("hci2", "AA:BB:CC:DD:EE:FF")]


def test_transcribe_uses_the_configured_model_unless_model_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(config.CONFIG_ENV, str(write_config(tmp_path, "asr:\n  model: tiny.en-q9_9\n")))
    assert main(["transcribe", str(tmp_path / "speech.wav")]) != 0
    assert "whisper model 'tiny.en-q9_9' not found" in capsys.readouterr().err
    assert main(["transcribe", str(tmp_path / "speech.wav"), "--model", "base.en-q9_9"]) != 0
    err = capsys.readouterr().err
    assert "whisper model 'base.en-q9_9' not found" in err and "tiny.en-q9_9" not in err


def run_verbose(*argv: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "voxkey", "-v", *argv], capture_output=True, text=True, check=True, env=env
    )
    return result.stderr


def test_verbose_says_which_config_file_was_used(tmp_path: Path) -> None:
    path = write_config(tmp_path, "output:\n  layout: de\n")
    env = {**os.environ, config.CONFIG_ENV: str(path)}
    assert f"config: {path}" in run_verbose("keys", "a", env=env)
    absent = tmp_path / "absent.yaml"
    env[config.CONFIG_ENV] = str(absent)
    assert f"config: none ({absent} does not exist), using the defaults" in run_verbose("keys", "a", env=env)


def test_models_download_without_a_name_fetches_the_configured_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from voxkey.cli import speech

    fetched: list[str] = []

    def download(name: str, directory: Path, progress: object = None) -> Path:
        fetched.append(name)
        return directory / f"ggml-{name}.bin"

    monkeypatch.setattr(speech, "download_model", download)
    path = write_config(tmp_path, "asr:\n  model: tiny.en-q8_0\n")
    assert main(["models", "download", "--config", str(path), "--dir", str(tmp_path)]) == 0
    assert main(["models", "download", "base.en-q5_1", "--config", str(path), "--dir", str(tmp_path)]) == 0
    assert fetched == ["tiny.en-q8_0", "base.en-q5_1"]
    path.write_text("asr:\n  model: /opt/models/mine.bin\n")
    assert main(["models", "download", "--config", str(path), "--dir", str(tmp_path)]) == 1
    assert "asr.model '/opt/models/mine.bin' is not an official model" in capsys.readouterr().err
