"""``voxkey doctor`` against sysfs- and /dev-shaped trees: each failure names its fix."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero import LED, Button, Device
from gpiozero.pins.mock import MockFactory, MockPin

from voxkey import config as config_module
from voxkey.asr import AsrSettings
from voxkey.cli import main
from voxkey.config import Apa102Settings, ButtonSettings, Config, LedSettings, OutputSettings, UsbSettings
from voxkey.doctor import CheckResult, Doctor, HostPlatform, SystemPaths, format_results
from voxkey.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def system(tmp_path: Path) -> SystemPaths:
    paths = SystemPaths(
        udc_class=tmp_path / "sys/class/udc",
        configfs=tmp_path / "sys/kernel/config",
        bluetooth_class=tmp_path / "sys/class/bluetooth",
        rfkill_class=tmp_path / "sys/class/rfkill",
        dev=tmp_path / "dev",
        boot_config=(tmp_path / "boot/firmware/config.txt",),
        bluetoothd_dropin=tmp_path / "etc/systemd/system/bluetooth.service.d/voxkey-bluetoothd.conf",
        dpkg_status=tmp_path / "var/lib/dpkg/status",
    )
    paths.dev.mkdir(parents=True)
    return paths


def usb_config(tmp_path: Path, transport: str = "usb") -> Config:
    return Config(
        output=OutputSettings(transport=transport),  # type: ignore[arg-type]
        usb=UsbSettings(device=tmp_path / "dev" / "hidg0"),
        asr=AsrSettings(model="tiny.en-q5_1"),
    )


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def make_pi(paths: SystemPaths, state: str = "configured", bound: bool = True) -> None:
    udc = paths.udc_class / "3f980000.usb"
    udc.mkdir(parents=True)
    (udc / "state").write_text(f"{state}\n")
    gadget = paths.configfs / "usb_gadget" / "voxkey"
    gadget.mkdir(parents=True)
    (gadget / "UDC").write_text("3f980000.usb\n" if bound else "\n")
    (paths.dev / "hidg0").touch()
    (paths.dev / "gpiochip0").touch()


def test_a_working_usb_keyboard_passes(tmp_path: Path, system: SystemPaths) -> None:
    make_pi(system)
    results = by_name(Doctor(usb_config(tmp_path), paths=system).run())
    for name in ("config", "model", "usb controller", "usb gadget", "keyboard device", "gpio"):
        assert results[name].ok, results[name]
    assert results["usb controller"].detail == "3f980000.usb, state configured"
    assert results["usb gadget"].detail == "bound to 3f980000.usb"
    assert not results["bluetooth"].used and not results["/dev/uinput"].used


def test_no_udc_says_to_enable_dwc2(tmp_path: Path, system: SystemPaths) -> None:
    system.boot_config[0].parent.mkdir(parents=True)
    system.boot_config[0].write_text("dtparam=audio=on\n")
    result = Doctor(usb_config(tmp_path), paths=system).check_udc()
    assert not result.ok
    assert "add dtoverlay=dwc2,dr_mode=peripheral" in result.fix and "reboot" in result.fix
    system.boot_config[0].write_text("dtoverlay=dwc2,dr_mode=peripheral\n")
    assert "reboot" in Doctor(usb_config(tmp_path), paths=system).check_udc().fix


def test_host_not_connected_is_said_but_not_a_failure(tmp_path: Path, system: SystemPaths) -> None:
    make_pi(system, state="not attached")
    result = Doctor(usb_config(tmp_path), paths=system).check_udc()
    assert result.ok
    assert "plug the OTG port into a computer" in result.detail


def test_gadget_problems(tmp_path: Path, system: SystemPaths) -> None:
    doctor = Doctor(usb_config(tmp_path), paths=system)
    assert "modprobe libcomposite" in doctor.check_gadget().fix
    (system.configfs / "usb_gadget").mkdir(parents=True)
    assert doctor.check_gadget().fix == "sudo systemctl start voxkey-gadget"
    make_pi(system, bound=False)
    assert doctor.check_gadget().fix == "sudo voxkey-gadget up"
    (system.dev / "hidg0").unlink()
    hidg = doctor.check_hidg()
    assert not hidg.ok and "voxkey-gadget" in hidg.fix


def test_unknown_udc_name(tmp_path: Path, system: SystemPaths) -> None:
    make_pi(system)
    config = dataclasses.replace(usb_config(tmp_path), usb=UsbSettings(device=system.dev / "hidg0", udc="fe980000.usb"))
    result = Doctor(config, paths=system).check_udc()
    assert not result.ok and "fe980000.usb" in result.detail and "3f980000.usb" in result.detail


def test_bluetooth_adapter_checks(tmp_path: Path, system: SystemPaths) -> None:
    doctor = Doctor(usb_config(tmp_path, "bluetooth"), paths=system)
    missing = doctor.check_bluetooth()
    assert not missing.ok and "disable-bt" in missing.fix
    (system.bluetooth_class / "hci0").mkdir(parents=True)
    rfkill = system.rfkill_class / "rfkill0"
    rfkill.mkdir(parents=True)
    (rfkill / "type").write_text("bluetooth\n")
    (rfkill / "soft").write_text("1\n")
    blocked = doctor.check_bluetooth()
    assert not blocked.ok and blocked.fix == "sudo rfkill unblock bluetooth"
    assert not doctor.check_udc().used  # USB checks do not apply to a Bluetooth-only keyboard


def test_gpio_checks(tmp_path: Path, system: SystemPaths) -> None:
    config = dataclasses.replace(usb_config(tmp_path), button=ButtonSettings(pin=17, cancel_pin=22))
    missing = Doctor(config, paths=system).check_gpio()
    assert not missing.ok and "button.source terminal" in missing.fix
    (system.dev / "gpiochip0").touch()
    found = Doctor(config, paths=system).check_gpio()
    assert found.ok and found.detail == "gpiochip0 accessible; button on GPIO 17, 22"
    pc = dataclasses.replace(config, button=ButtonSettings(source="terminal"), leds=LedSettings(kind="none"))
    assert not Doctor(pc, paths=system).check_gpio().used


@pytest.mark.parametrize("machine", ["aarch64", "x86_64"])
def test_a_64bit_os_passes_the_architecture_check(tmp_path: Path, system: SystemPaths, machine: str) -> None:
    result = Doctor(usb_config(tmp_path), paths=system, host=HostPlatform(machine, 64)).check_architecture()
    assert result.ok and result.detail == f"64-bit ({machine})"


@pytest.mark.parametrize(
    ("machine", "said"),
    [("armv7l", "32-bit OS (armv7l, 32-bit Python)"), ("aarch64", "32-bit OS (on a 64-bit kernel, aarch64")],
)
def test_a_32bit_raspberry_pi_os_fails_with_64bit_advice(
    tmp_path: Path, system: SystemPaths, machine: str, said: str
) -> None:
    """Raspberry Pi OS 32-bit (armhf) boots a 64-bit kernel on a Pi 4/5: the userland decides, not uname."""
    result = Doctor(usb_config(tmp_path), paths=system, host=HostPlatform(machine, 32)).check_architecture()
    assert not result.ok
    assert result.detail.startswith(said) and "pywhispercpp" in result.detail
    assert "install Raspberry Pi OS (64-bit)" in result.fix


def test_an_armv6_pi_is_told_it_cannot_run_voxkey(tmp_path: Path, system: SystemPaths) -> None:
    result = Doctor(usb_config(tmp_path), paths=system, host=HostPlatform("armv6l", 32)).check_architecture()
    assert not result.ok and "cannot run a 64-bit OS" in result.fix and "Zero 2 W" in result.fix


def gpio_button_config(tmp_path: Path, pin: int = 17, cancel_pin: int | None = 22) -> Config:
    return dataclasses.replace(usb_config(tmp_path), button=ButtonSettings(pin=pin, cancel_pin=cancel_pin))


def pi5(paths: SystemPaths) -> SystemPaths:
    """The device tree of a Pi 5 (the model string ends in a NUL byte, as in /proc/device-tree/model)."""
    model = paths.dev.parent / "proc/device-tree/model"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\0")
    return dataclasses.replace(paths, device_tree_model=model)


@pytest.fixture
def no_active_pin_factory() -> Iterator[None]:
    """No gpiozero device made yet, as in the doctor's own process: gpiozero has not chosen a factory."""
    previous = Device.pin_factory
    Device.pin_factory = None
    try:
        yield
    finally:
        Device.pin_factory = previous


def test_pin_factory_check_names_the_active_factory_and_opens_the_button_pins(
    tmp_path: Path, system: SystemPaths, pins: MockFactory
) -> None:
    result = Doctor(gpio_button_config(tmp_path), paths=system).check_pin_factory()
    assert result.ok, result
    assert result.detail == "pin factory mock (active); button pins open: GPIO 17, GPIO 22"
    Button(17).close()  # released again: the daemon can take it
    Button(22).close()


def test_a_button_pin_the_factory_cannot_open_fails(tmp_path: Path, system: SystemPaths, pins: MockFactory) -> None:
    result = Doctor(gpio_button_config(tmp_path, pin=99), paths=system).check_pin_factory()
    assert not result.ok
    assert result.detail.startswith("pin factory mock (active): cannot open GPIO 99: PinInvalidPin")
    assert "button.pin" in result.fix
    on_a_pi5 = Doctor(gpio_button_config(tmp_path, pin=99), paths=pi5(system)).check_pin_factory()
    assert not on_a_pi5.ok and "sudo apt install python3-lgpio" in on_a_pi5.fix  # mock is not lgpio


def test_a_button_pin_held_elsewhere_is_reported_in_use(tmp_path: Path, system: SystemPaths, pins: MockFactory) -> None:
    held = LED(22)  # as the running service holds the button
    try:
        result = Doctor(gpio_button_config(tmp_path), paths=system).check_pin_factory()
    finally:
        held.close()
    assert result.ok, result
    assert "button pins open: GPIO 17; in use: GPIO 22 (the running voxkey service holds its button" in result.detail


class BusyPin(MockPin):
    """A line another process has claimed: lgpio says "GPIO busy" when it is opened."""

    def __init__(self, factory: Any, info: Any) -> None:
        raise OSError("GPIO busy")


def test_a_line_another_process_holds_is_in_use_not_broken(tmp_path: Path, system: SystemPaths) -> None:
    previous = Device.pin_factory
    Device.pin_factory = MockFactory(pin_class=BusyPin)
    try:
        result = Doctor(gpio_button_config(tmp_path, cancel_pin=None), paths=system).check_pin_factory()
    finally:
        Device.pin_factory.reset()
        Device.pin_factory = previous
    assert result.ok and result.detail.startswith("pin factory mock (active); in use: GPIO 17 ("), result


def test_without_an_active_factory_the_check_uses_the_one_gpiozero_would_pick(
    tmp_path: Path, system: SystemPaths, no_active_pin_factory: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    result = Doctor(gpio_button_config(tmp_path), paths=system).check_pin_factory()
    assert result.ok and result.detail.startswith("pin factory mock (would be used); button pins open"), result
    assert Device.pin_factory is None  # looked at, not installed


def test_no_usable_pin_factory_on_a_pi5_says_to_install_lgpio(
    tmp_path: Path, system: SystemPaths, no_active_pin_factory: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-backend")
    result = Doctor(gpio_button_config(tmp_path), paths=pi5(system)).check_pin_factory()
    assert not result.ok
    assert (
        result.detail.startswith("no gpiozero pin factory works (BadPinFactory: ")
        and "no-such-backend" in result.detail
    )
    assert result.fix.startswith("a Pi 5 needs lgpio: sudo apt install python3-lgpio")
    elsewhere = Doctor(gpio_button_config(tmp_path), paths=system).check_pin_factory()
    assert not elsewhere.ok and not elsewhere.fix.startswith("a Pi 5")


def test_pin_factory_check_is_not_used_with_a_terminal_button(tmp_path: Path, system: SystemPaths) -> None:
    config = dataclasses.replace(usb_config(tmp_path), button=ButtonSettings(source="terminal"))
    assert not Doctor(config, paths=system).check_pin_factory().used


def test_spi_check_for_apa102_leds(tmp_path: Path, system: SystemPaths) -> None:
    assert not Doctor(usb_config(tmp_path), paths=system).check_spi().used  # leds.kind led
    config = dataclasses.replace(
        usb_config(tmp_path), leds=LedSettings(kind="apa102", apa102=Apa102Settings(spi_bus=0, spi_device=1))
    )
    missing = Doctor(config, paths=system).check_spi()
    assert not missing.ok and missing.detail.startswith(f"{system.dev / 'spidev0.1'} does not exist")
    assert "dtparam=spi=on" in missing.fix
    (system.dev / "spidev0.1").touch()
    found = Doctor(config, paths=system).check_spi()
    assert found.ok and found.detail == f"{system.dev / 'spidev0.1'} is readable and writable"
    bonnet = dataclasses.replace(
        config, leds=LedSettings(kind="apa102", apa102=Apa102Settings(clock_pin=6, data_pin=5))
    )
    assert not Doctor(bonnet, paths=system).check_spi().used


def test_uinput_check(tmp_path: Path, system: SystemPaths) -> None:
    doctor = Doctor(usb_config(tmp_path, "uinput"), paths=system)
    result = doctor.check_uinput()
    assert not result.ok and result.fix == "sudo modprobe uinput"
    (system.dev / "uinput").touch()
    assert doctor.check_uinput().ok


def test_missing_model_says_how_to_download(tmp_path: Path, system: SystemPaths) -> None:
    config = dataclasses.replace(usb_config(tmp_path), asr=AsrSettings(model="base.en-q8_0"))
    result = Doctor(config, paths=system).check_model()
    assert not result.ok and result.fix == "voxkey models download base.en-q8_0"


def test_config_error_is_reported_with_its_place(tmp_path: Path, system: SystemPaths) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("button:\n  mode: sideways\n")
    with pytest.raises(ConfigError) as caught:
        config_module.load(bad)
    result = Doctor(Config(), caught.value, paths=system).check_config()
    assert not result.ok and result.detail.startswith(f"{bad}:2: ")


def test_every_check_returns_a_result(tmp_path: Path, system: SystemPaths) -> None:
    results = Doctor(usb_config(tmp_path, "both"), paths=system).run()
    assert len(results) == 16  # 12 + the speech server's privacy and reachability (asr.remote) + Bluetooth hosts
    # + the bluetoothd built for old BlueZ hosts
    assert all(r.ok or r.fix for r in results), [r for r in results if not r.ok and not r.fix]


def test_format_results() -> None:
    text = format_results(
        [
            CheckResult("config", True, "fine"),
            CheckResult("model", False, "missing", "voxkey models download tiny.en-q8_0"),
            CheckResult("bluetooth", True, "not used", used=False),
        ]
    )
    assert text.splitlines() == [
        "ok   config: fine",
        "FAIL model: missing",
        "     fix: voxkey models download tiny.en-q8_0",
        "--   bluetooth: not used",
        "1 problem found",
    ]


@pytest.mark.parametrize(
    ("oks", "code", "last_line"), [((True, True), 0, "all checks passed"), ((True, False), 1, "1 problem found")]
)
def test_cli_doctor_exits_1_exactly_when_a_check_fails(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    oks: tuple[bool, ...],
    code: int,
    last_line: str,
) -> None:
    """A service script runs ``voxkey doctor`` for its exit code: it must not say "fine" with a FAIL line."""
    from voxkey import doctor

    results = [CheckResult(f"check {i}", ok, "detail", "" if ok else "do this") for i, ok in enumerate(oks)]
    results.append(CheckResult("bluetooth", True, "not used", used=False))
    monkeypatch.setattr(doctor, "run_checks", lambda config, config_error=None: results)
    assert main(["doctor", "--config", str(REPO / "examples" / "usb.yaml")]) == code
    assert capsys.readouterr().out.strip().splitlines()[-1] == last_line


def test_cli_doctor_fails_with_the_fix_when_the_model_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VOXKEY_MODEL_DIR", str(tmp_path))  # no model in it
    code = main(["doctor", "--config", str(REPO / "examples" / "usb.yaml")])
    out = capsys.readouterr().out
    assert "ok   config:" in out
    assert "FAIL model:" in out and "voxkey models download" in out
    assert code == 1
