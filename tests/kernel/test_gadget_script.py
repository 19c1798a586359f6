"""``gadget/voxkey-gadget`` logic against a configfs look-alike in a temp dir (no kernel).

The script's env overrides point it at plain directories; on a real configfs
attribute files appear by themselves, here they are just files, so these tests
check what the script writes and its error paths. The kernel tests
(``test_usb_keyboard.py``) prove the same script against real configfs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from voxkey.hid import keyboard_report_descriptor

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "gadget" / "voxkey-gadget"


class FakeSystem:
    def __init__(self, root: Path) -> None:
        self.configfs = root / "config"
        self.udc_class = root / "udc"
        self.device_tree = root / "device-tree"
        self.machine_id = root / "machine-id"
        (self.configfs / "usb_gadget").mkdir(parents=True)
        self.udc_class.mkdir()
        self.device_tree.mkdir()
        self.machine_id.write_text("0123456789abcdef0123456789abcdef\n")
        self.gadget = self.configfs / "usb_gadget" / "voxkey"

    def add_udc(self, name: str, state: str = "configured") -> None:
        (self.udc_class / name).mkdir()
        (self.udc_class / name / "state").write_text(state + "\n")

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = dict(
            os.environ,
            VOXKEY_CONFIGFS=str(self.configfs),
            VOXKEY_UDC_CLASS=str(self.udc_class),
            VOXKEY_DEVICE_TREE=str(self.device_tree),
            VOXKEY_MACHINE_ID=str(self.machine_id),
            VOXKEY_MODPROBE="true",
        )
        return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, check=False)


@pytest.fixture
def system(tmp_path: Path) -> FakeSystem:
    return FakeSystem(tmp_path)


def test_up_writes_a_boot_keyboard_with_the_shared_descriptor(system: FakeSystem) -> None:
    system.add_udc("dummy_udc.0")
    (system.device_tree / "serial-number").write_bytes(b"10000000abcdef01\x00")
    result = system.run("up")
    assert result.returncode == 0, result.stderr
    gadget = system.gadget
    assert (gadget / "idVendor").read_text().strip() == "0x1d6b"
    assert (gadget / "idProduct").read_text().strip() == "0x0104"
    assert (gadget / "strings/0x409/serialnumber").read_text().strip() == "10000000abcdef01"
    assert (gadget / "strings/0x409/product").read_text().strip() == "voxkey voice keyboard"
    function = gadget / "functions/hid.usb0"
    assert (function / "report_desc").read_bytes() == keyboard_report_descriptor()
    assert [(function / name).read_text().strip() for name in ("protocol", "subclass", "report_length")] == [
        "1",
        "1",
        "8",
    ]
    link = gadget / "configs/c.1/hid.usb0"
    assert link.is_symlink() and link.resolve() == function.resolve()
    assert (gadget / "UDC").read_text().strip() == "dummy_udc.0"


def test_descriptor_is_the_63_byte_boot_keyboard_with_led_output_report() -> None:
    descriptor = keyboard_report_descriptor()
    assert len(descriptor) == 63
    assert bytes.fromhex("05 08 19 01 29 05 91 02") in descriptor  # LED usages 1..5 as output
    assert bytes.fromhex("95 01 75 03 91 01") in descriptor  # 3 bits of LED padding
    assert bytes.fromhex("25 65 05 07 19 00 29 65 81 00") in descriptor  # 6-key array, usages 0..0x65


def test_serial_without_device_tree_is_a_stable_hash_of_machine_id(system: FakeSystem) -> None:
    system.add_udc("dummy_udc.0")
    assert system.run("up").returncode == 0
    serial = (system.gadget / "strings/0x409/serialnumber").read_text().strip()
    expected = hashlib.sha256(b"voxkey-usb-serial:0123456789abcdef0123456789abcdef").hexdigest()[:16].upper()
    assert serial == expected


def test_up_twice_and_down_twice_are_idempotent(system: FakeSystem) -> None:
    system.add_udc("dummy_udc.0")
    assert system.run("up").returncode == 0
    second = system.run("up")
    assert second.returncode == 0 and "already up on dummy_udc.0" in second.stdout
    assert system.run("status").returncode == 0
    down = system.run("down")
    assert down.returncode == 0, down.stderr
    assert list((system.configfs / "usb_gadget").iterdir()) == []
    again = system.run("down")
    assert again.returncode == 0 and "already down" in again.stdout
    assert system.run("status").returncode == 3


def test_up_binds_the_first_udc_or_the_one_asked_for(system: FakeSystem) -> None:
    system.add_udc("b.usb")
    system.add_udc("a.usb")
    assert system.run("up").returncode == 0
    assert (system.gadget / "UDC").read_text().strip() == "a.usb"
    assert system.run("up", "--udc", "b.usb").returncode == 0
    assert (system.gadget / "UDC").read_text().strip() == "b.usb"


@pytest.mark.parametrize(
    ("prepare", "args", "message"),
    [
        (lambda s: None, ("up",), "dtoverlay=dwc2 to /boot/firmware/config.txt"),
        (lambda s: s.add_udc("x.usb"), ("up", "--udc", "y.usb"), "no USB device controller named y.usb"),
        (lambda s: (s.add_udc("x.usb"), (s.configfs / "usb_gadget").rmdir()), ("up",), "libcomposite"),
        (lambda s: None, ("sideways",), "usage: voxkey-gadget up|down|status"),
    ],
    ids=["no-udc", "unknown-udc", "no-libcomposite", "bad-command"],
)
def test_errors_are_one_line_and_nonzero(
    system: FakeSystem, prepare: object, args: tuple[str, ...], message: str
) -> None:
    prepare(system)  # type: ignore[operator]
    result = system.run(*args)
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_script_is_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is required (apt-get install shellcheck)"
    result = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
