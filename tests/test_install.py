"""install.sh in Debian bookworm and trixie roots made with debootstrap: install, install again, uninstall, purge.

What a chroot allows is tested for real: apt-get from the Debian mirror, the
venv with voxkey and its wheels from PyPI, the user and groups, the udev rule,
config.txt and modules-load.d edits (moving an older install's /etc/modules
block), the model, the units enabled (symlinks), and
the installed voxkey transcribing a recording as the service user. What needs
a booted Pi is not: udev applying the rule, systemd starting the units, dwc2.

Cache-friendly: the debootstrap root is kept as a tarball, apt's .deb files and
pip's wheels in ``$VOXKEY_TEST_CACHE`` (default ``~/.cache/voxkey-tests``), so
only the first run downloads the base system (~2 min). Needs root and
debootstrap (apt package); the whole test takes 3-6 minutes, hence ``slow``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CACHE = Path(os.environ.get("VOXKEY_TEST_CACHE", Path.home() / ".cache" / "voxkey-tests"))


def configured_debian_mirror() -> str:
    """The Debian mirror this machine's apt already uses, so the test reaches what apt reaches."""
    for sources in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")):
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and not line.rstrip().endswith("-security"):
                return line.split()[1]
    for line in (
        Path("/etc/apt/sources.list").read_text().splitlines() if Path("/etc/apt/sources.list").is_file() else []
    ):
        fields = line.split()
        if len(fields) >= 3 and fields[0] == "deb" and "security" not in fields[1]:
            return fields[1]
    raise RuntimeError("no Debian mirror configured for apt; set VOXKEY_DEBIAN_MIRROR")


RELEASES = ("bookworm", "trixie")
"""Raspberry Pi OS is built on both: trixie today, bookworm on many Pis still."""
PI_CONFIG_TXT = "# Raspberry Pi OS config.txt\ndtparam=audio=on\ncamera_auto_detect=1\n\n[cm4]\notg_mode=1\n"
ETC_MODULES = "# /etc/modules: kernel modules to load at boot time.\n\nloop\n"
OLD_INSTALL_BLOCK = (
    "# >>> voxkey (install.sh; removed by install.sh --uninstall) >>>\ndwc2\nlibcomposite\n# <<< voxkey <<<\n"
)
SOURCE_IGNORE = shutil.ignore_patterns(
    ".git", "__pycache__", "*.egg-info", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", "build"
)


def run(command: list[str], timeout: float = 900, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result  # type: ignore[no-any-return]


def make_base_root(root: Path, release: str) -> None:
    """Extract the cached root of RELEASE, or debootstrap one and cache it."""
    tarball = CACHE / f"{release}-minbase.tar"
    root.mkdir()
    if tarball.is_file():
        run(["tar", "-xpf", str(tarball), "-C", str(root)])
        return
    CACHE.mkdir(parents=True, exist_ok=True)
    run(
        [
            "debootstrap",
            "--variant=minbase",
            release,
            str(root),
            os.environ.get("VOXKEY_DEBIAN_MIRROR") or configured_debian_mirror(),
        ],
        timeout=1800,
    )
    partial = tarball.with_suffix(".partial")
    run(["tar", "-cpf", str(partial), "-C", str(root), "."])
    partial.rename(tarball)


CA_VARIABLES = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
CHROOT_CA = "/usr/local/share/host-ca-bundle.crt"


class Chroot:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.mounts: list[Path] = []
        self.env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
        }

    def trust_host_ca(self) -> None:
        """Where HTTPS goes through a proxy with its own CA, pip in the chroot must trust it as the host does."""
        bundle = next((os.environ[v] for v in CA_VARIABLES if os.path.isfile(os.environ.get(v, ""))), None)
        if bundle is None:
            return
        target = self.root / CHROOT_CA.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(bundle, target)
        self.env.update({variable: CHROOT_CA for variable in CA_VARIABLES})

    def bind(self, source: Path, target: str, read_only: bool = False) -> None:
        mountpoint = self.root / target.lstrip("/")
        mountpoint.mkdir(parents=True, exist_ok=True)
        run(["mount", "--bind", str(source), str(mountpoint)])
        self.mounts.append(mountpoint)
        if read_only:
            run(["mount", "-o", "remount,bind,ro", str(mountpoint)])

    def mount_proc(self) -> None:
        target = self.root / "proc"
        run(["mount", "-t", "proc", "proc", str(target)])
        self.mounts.append(target)

    def unmount_all(self) -> None:
        for mountpoint in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(mountpoint)], check=False, capture_output=True)
        self.mounts.clear()

    def sh(self, script: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        command = ["chroot", str(self.root), "/bin/bash", "-euo", "pipefail", "-c", script]
        return run(command, timeout=timeout, env=self.env)

    def read(self, path: str) -> str:
        return (self.root / path.lstrip("/")).read_text()

    def exists(self, path: str) -> bool:
        return os.path.lexists(self.root / path.lstrip("/"))


@pytest.fixture(scope="module", params=RELEASES)
def chroot(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chroot]:
    if os.geteuid() != 0:
        pytest.skip("needs root for chroot and mount (CI runs as root)")
    if shutil.which("debootstrap") is None:
        pytest.fail("debootstrap is missing: apt-get install debootstrap")
    base = tmp_path_factory.mktemp("install")
    root = base / "root"
    make_base_root(root, request.param)
    box = Chroot(root)
    try:
        shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
        box.trust_host_ca()
        (root / "boot" / "firmware").mkdir(parents=True, exist_ok=True)
        (root / "boot" / "firmware" / "config.txt").write_text(PI_CONFIG_TXT)
        # What an install.sh before modules-load.d left behind: its block in /etc/modules.
        (root / "etc" / "modules").write_text(ETC_MODULES + OLD_INSTALL_BLOCK)
        shutil.copytree(REPO, root / "usr" / "src" / "voxkey", ignore=SOURCE_IGNORE)
        for cache in ("apt-archives", "pip"):
            (CACHE / cache / "partial").mkdir(parents=True, exist_ok=True)
        box.mount_proc()
        box.bind(Path("/dev"), "/dev")
        box.bind(CACHE / "apt-archives", "/var/cache/apt/archives")
        box.bind(CACHE / "pip", "/root/.cache/pip")
        box.bind(SHARED / "models", "/media/models", read_only=True)
        box.bind(SHARED / "speech", "/media/speech", read_only=True)
        # apt in a container-less chroot: no daemons may start from package scripts.
        (root / "usr" / "sbin" / "policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
        (root / "usr" / "sbin" / "policy-rc.d").chmod(0o755)
        yield box
    finally:
        box.unmount_all()


INSTALLED_FILES = [
    "/etc/udev/rules.d/70-voxkey.rules",
    "/etc/systemd/system/voxkey.service",
    "/etc/systemd/system/voxkey-gadget.service",
    "/etc/voxkey/config.yaml",
    "/etc/modules",
    "/etc/modules-load.d/voxkey.conf",
    "/boot/firmware/config.txt",
    "/usr/local/sbin/voxkey-gadget",
    "/usr/local/share/voxkey/keyboard-report-descriptor.hex",
]


def snapshot(box: Chroot) -> dict[str, str]:
    return {path: box.read(path) for path in INSTALLED_FILES}


@pytest.mark.slow
def test_install_reinstall_uninstall_purge(chroot: Chroot) -> None:
    box = chroot
    first = box.sh("/usr/src/voxkey/install.sh --model-from /media/models", timeout=1800).stdout
    assert "services enabled" in first
    assert "warning: made for" not in first  # bookworm and trixie are both supported
    assert "enabled USB device mode in /boot/firmware/config.txt" in first

    # Everything in place.
    assert box.sh("/opt/voxkey/venv/bin/voxkey --version").stdout.startswith("voxkey ")
    assert box.exists("/usr/local/bin/voxkey")
    groups = box.sh("id -nG voxkey").stdout.split()
    assert {"voxkey", "audio", "gpio", "spi", "bluetooth"} <= set(groups)
    assert box.sh("getent passwd voxkey").stdout.strip().endswith(":/var/lib/voxkey:/usr/sbin/nologin")
    assert 'SUBSYSTEM=="hidg", KERNEL=="hidg[0-9]*", GROUP="voxkey", MODE="0660"' in box.read(
        "/etc/udev/rules.d/70-voxkey.rules"
    )
    config_txt = box.read("/boot/firmware/config.txt")
    assert config_txt.startswith(PI_CONFIG_TXT)
    assert config_txt.count("dtoverlay=dwc2,dr_mode=peripheral") == 1
    assert config_txt.index("[all]") > config_txt.index("[cm4]")  # our line is not under a model filter
    assert "moved dwc2, libcomposite from /etc/modules to /etc/modules-load.d/voxkey.conf" in first
    assert box.read("/etc/modules") == ETC_MODULES  # the old block is gone, the rest untouched
    modules = box.read("/etc/modules-load.d/voxkey.conf").split("\n")
    assert "dwc2" in modules and "libcomposite" in modules
    assert box.read("/etc/voxkey/config.yaml") == (REPO / "examples" / "usb.yaml").read_text()
    for unit in ("voxkey.service", "voxkey-gadget.service"):
        link = box.root / "etc/systemd/system/multi-user.target.wants" / unit
        assert link.is_symlink(), f"{unit} is not enabled"
    # Every command the installed units run is installed too (ExecReload's kill: procps, not in minbase).
    units = "/etc/systemd/system/voxkey.service /etc/systemd/system/voxkey-gadget.service"
    assert box.sh(f"systemd-analyze verify {units} 2>&1").stdout == ""
    model = box.sh("stat -c '%U %a' /var/lib/voxkey/models/ggml-tiny.en-q8_0.bin").stdout.split()
    assert model == ["voxkey", "644"]
    assert box.sh("voxkey config check /etc/voxkey/config.yaml").stdout.startswith("/etc/voxkey/config.yaml: ok")
    gadget = box.sh("VOXKEY_CONFIGFS=/tmp/cfs VOXKEY_UDC_CLASS=/tmp/udc voxkey-gadget status || echo rc=$?").stdout
    assert "rc=3" in gadget  # the installed gadget script runs (and finds no gadget in a chroot)

    # The installed voxkey works as the service user: one dictation over a recording.
    sed = "s/model: tiny.en-q5_1/model: tiny.en-q8_0/"
    box.sh(f"sed '{sed}' /usr/src/voxkey/examples/simulate.yaml > /etc/voxkey/simulate.yaml")
    typed = box.sh(
        "cd /tmp && runuser -u voxkey -- env VOXKEY_MODEL_DIR=/var/lib/voxkey/models "
        "/opt/voxkey/venv/bin/voxkey run --config /etc/voxkey/simulate.yaml --audio-file /media/speech/jfk.wav",
        timeout=600,
    ).stdout
    assert "ask not what your country can do for you" in typed.lower()
    doctor = subprocess.run(
        ["chroot", str(box.root), "/usr/local/bin/voxkey", "doctor"],
        capture_output=True,
        text=True,
        timeout=120,
        env=box.env,
    )
    assert doctor.returncode == 1  # a chroot has no UDC and no GPIO: reported, not crashed
    assert "ok   model: /var/lib/voxkey/models/ggml-tiny.en-q8_0.bin" in doctor.stdout
    assert "FAIL usb controller" in doctor.stdout and "fix:" in doctor.stdout

    # A second run changes nothing.
    before = snapshot(box)
    second = box.sh("/usr/src/voxkey/install.sh --model-from /media/models", timeout=1800).stdout
    assert snapshot(box) == before
    assert "apt packages already installed" in second
    assert "keeping the existing /etc/voxkey/config.yaml" in second
    assert "model tiny.en-q8_0 already in /var/lib/voxkey/models" in second
    assert "enabled USB device mode" not in second

    # A config switched to a mic HAT's APA102 LEDs: spidev in the venv and SPI on in config.txt, once.
    box.sh("sed -i 's/^  kind: led .*/  kind: apa102/' /etc/voxkey/config.yaml")
    apa102 = box.sh("/usr/src/voxkey/install.sh --model-from /media/models", timeout=1800).stdout
    assert "installing spidev for the APA102 LEDs" in apa102
    assert "SPI (APA102 LEDs) in /boot/firmware/config.txt" in apa102
    config_txt = box.read("/boot/firmware/config.txt")
    assert config_txt.count("dtparam=spi=on") == 1 and config_txt.count("dtoverlay=dwc2,dr_mode=peripheral") == 1
    box.sh("/opt/voxkey/venv/bin/python -c 'import spidev'")
    again = box.sh("/usr/src/voxkey/install.sh --model-from /media/models", timeout=1800).stdout
    assert "SPI (APA102 LEDs)" not in again and "installing spidev" not in again
    assert box.read("/boot/firmware/config.txt") == config_txt

    # Uninstall keeps config, models and user; the system files are as before.
    box.sh("/usr/src/voxkey/install.sh --uninstall")
    assert box.read("/boot/firmware/config.txt") == PI_CONFIG_TXT
    assert box.read("/etc/modules") == ETC_MODULES
    assert not box.exists("/etc/modules-load.d/voxkey.conf")
    for gone in (
        "/opt/voxkey",
        "/etc/systemd/system/voxkey.service",
        "/etc/udev/rules.d/70-voxkey.rules",
        "/usr/local/sbin/voxkey-gadget",
        "/usr/local/bin/voxkey",
        "/etc/systemd/system/multi-user.target.wants/voxkey.service",
    ):
        assert not box.exists(gone), gone
    assert box.exists("/etc/voxkey/config.yaml") and box.exists("/var/lib/voxkey/models")
    box.sh("id voxkey")

    # Purge removes the rest; uninstalling twice is fine.
    box.sh("/usr/src/voxkey/install.sh --uninstall --purge")
    box.sh("/usr/src/voxkey/install.sh --uninstall")
    assert not box.exists("/etc/voxkey") and not box.exists("/var/lib/voxkey")
    assert "no such user" in box.sh("id voxkey 2>&1 || true").stdout


# --- checks of the scripts and units that need no chroot --------------------------------------------


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: apt-get install {'systemd' if name == 'systemd-analyze' else name}")
    return path


def test_units_pass_systemd_analyze_verify() -> None:
    units = sorted(str(p) for p in (REPO / "systemd").glob("*.service"))
    assert len(units) == 2
    result = subprocess.run([tool("systemd-analyze"), "verify", *units], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_service_exposure_is_at_most_4() -> None:
    result = subprocess.run(
        [tool("systemd-analyze"), "security", "--offline=true", str(REPO / "systemd" / "voxkey.service")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    summary = [line for line in result.stdout.splitlines() if "Overall exposure level" in line]
    assert summary, result.stdout + result.stderr
    exposure = float(summary[0].split(":")[1].split()[0])
    assert exposure <= 4.0, summary[0]


def test_install_script_is_shellcheck_clean() -> None:
    result = subprocess.run([tool("shellcheck"), str(REPO / "install.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_install_script_usage() -> None:
    helped = subprocess.run(["bash", str(REPO / "install.sh"), "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "--uninstall" in helped.stdout
    wrong = subprocess.run(["bash", str(REPO / "install.sh"), "--frobnicate"], capture_output=True, text=True)
    assert wrong.returncode == 2


# --- single functions of install.sh (sourced, it only defines them): decisions that need no chroot ---------


def sourced(script: str) -> subprocess.CompletedProcess[str]:
    """Run SCRIPT in bash after sourcing install.sh, so one function's decision is tested without installing.

    As root it runs as nobody: should sourcing ever run the installer itself, install.sh refuses
    ("run as root") instead of installing on the machine running the tests.
    """
    as_nobody = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
    return subprocess.run(
        [*as_nobody, "bash", "-c", f'source "$1"; {script}', "sourced-by-test", str(REPO / "install.sh")],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sourcing_install_sh_only_defines_functions() -> None:
    result = sourced("declare -F check_release >/dev/null && echo defined")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "defined\n" and result.stderr == ""


def test_install_supports_bookworm_and_trixie() -> None:
    for codename in ("bookworm", "trixie"):
        supported = sourced(f"check_release {codename} 'Debian {codename}'")
        assert supported.returncode == 0 and supported.stdout == "", supported
    older = sourced("check_release bullseye 'Debian GNU/Linux 11 (bullseye)'")
    assert older.returncode == 0  # a warning, not a refusal
    assert "warning: made for Raspberry Pi OS / Debian bookworm (12) or trixie (13)" in older.stdout
    assert "Debian GNU/Linux 11 (bullseye)" in older.stdout


def test_install_refuses_a_32bit_os_before_anything_else() -> None:
    for arch in ("armhf", "armel", "i386"):
        refused = sourced(f"check_architecture {arch}; echo went on")
        assert refused.returncode == 1 and "went on" not in refused.stdout, refused
        assert f"this is a 32-bit OS ({arch})" in refused.stderr
        assert "needs a 64-bit OS" in refused.stderr and "Raspberry Pi OS (64-bit)" in refused.stderr
    for arch in ("arm64", "amd64"):
        accepted = sourced(f"check_architecture {arch}; echo went on")
        assert accepted.returncode == 0 and accepted.stdout == "went on\n", accepted
    # The first check of an install: a 32-bit Pi hears about it even before "run as root".
    early = sourced("dpkg() { echo armhf; }; check_system")
    assert early.returncode == 1 and "needs a 64-bit OS" in early.stderr and "root" not in early.stderr


PI5 = "Raspberry Pi 5 Model B Rev 1.0"
PI4 = "Raspberry Pi 4 Model B Rev 1.5"


def test_install_reads_the_board_model_from_the_device_tree() -> None:
    # As /proc/device-tree/model: NUL-terminated.
    read = sourced(f"board_model <(printf '{PI5}\\0'); echo '|'; board_model /nonexistent/model; echo '|'")
    assert read.returncode == 0 and read.stdout == f"{PI5}|\n|\n", read
    for board in (PI5, "Raspberry Pi 500 Rev 1.0", "Raspberry Pi Compute Module 5 Rev 1.0"):
        assert sourced(f"is_pi5 '{board}'").returncode == 0, board
    for board in (PI4, "Raspberry Pi Zero 2 W Rev 1.0", ""):
        assert sourced(f"is_pi5 '{board}'").returncode == 1, board


def test_install_takes_lgpio_from_apt_where_apt_has_it() -> None:
    for board in (PI5, PI4):
        chosen = sourced(f"apt_knows() {{ [[ $1 == python3-lgpio ]]; }}; gpio_package '{board}'")
        assert chosen.returncode == 0 and chosen.stdout == "python3-lgpio\n", chosen


NO_LGPIO = "apt_knows() { return 1; }; python3() { return 1; };"


def test_install_stops_on_a_pi5_without_lgpio_and_says_what_to_do() -> None:
    refused = sourced(f"{NO_LGPIO} gpio_package '{PI5}'; echo went on")
    assert refused.returncode == 1 and "went on" not in refused.stdout, refused
    assert f"this is a {PI5}: its GPIO (the button, the LEDs) needs lgpio" in refused.stderr
    assert "archive.raspberrypi.com" in refused.stderr and "run install.sh again" in refused.stderr


def test_install_needs_no_lgpio_from_apt_on_other_pis_or_where_python3_has_it() -> None:
    other_pi = sourced(f"{NO_LGPIO} gpio_package '{PI4}'")
    assert other_pi.returncode == 0 and other_pi.stdout == "", other_pi
    has_lgpio = sourced(
        f"apt_knows() {{ return 1; }}; python3() {{ [[ $* == *'import lgpio'* ]]; }}; gpio_package '{PI5}'"
    )
    assert has_lgpio.returncode == 0 and has_lgpio.stdout == "", has_lgpio


BLUEZ_MAIN_CONF = """\
[General]
# Default device id
#DeviceID = bluetooth:1234:5678:abcd

# Restricts all controllers to the specified transport.
#ControllerMode = dual

[Policy]
AutoEnable=true
"""


@pytest.fixture
def bluez_dir() -> Iterator[Path]:
    """A folder the sourced script may write (it runs as nobody when the tests run as root)."""
    folder = Path(tempfile.mkdtemp(prefix="voxkey-bluez-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder)


def bluez_conf_dir(folder: Path) -> Path:
    """A main.conf shaped like Debian's."""
    conf = folder / "main.conf"
    conf.write_text(BLUEZ_MAIN_CONF)
    conf.chmod(0o666)
    return folder


def test_a_bluetooth_install_writes_what_bluetoothd_needs_into_main_conf_and_uninstall_restores_it(
    bluez_dir: Path,
) -> None:
    """bluetoothd has no drop-in directory: its commented defaults become voxkey's settings, in place."""
    conf = bluez_conf_dir(bluez_dir) / "main.conf"
    first = sourced(f"if set_bluez_settings {conf}; then echo unchanged; else echo changed; fi")
    assert first.returncode == 0 and first.stdout == "changed\n", first
    written = conf.read_text()
    assert "DeviceID = usb:1d6b:0104:0100\n" in written and "#DeviceID" not in written
    assert "ControllerMode = le\n" in written and "#ControllerMode" not in written
    assert "[GATT]\nChannels = 1\n" in written  # one ATT bearer: reports cannot overtake each other
    assert "JustWorksRepairing = confirm\n" in written  # a host that forgot voxkey can pair again (agent decides)
    assert written.endswith("[LE]\nMinConnectionInterval = 6\nMaxConnectionInterval = 12\n")
    assert "# Restricts all controllers to the specified transport.\n" in written  # comments stay
    assert "[Policy]\nAutoEnable=true\n" in written
    assert (conf.parent / "main.conf.voxkey-orig").read_text() == BLUEZ_MAIN_CONF
    again = sourced(f"if set_bluez_settings {conf}; then echo unchanged; else echo changed; fi")
    assert again.stdout == "unchanged\n" and conf.read_text() == written, again  # a second install changes nothing
    restored = sourced(f"restore_bluez_conf {conf}")
    assert restored.returncode == 0 and conf.read_text() == BLUEZ_MAIN_CONF, restored
    assert not (conf.parent / "main.conf.voxkey-orig").exists()


def test_an_active_setting_of_the_user_is_changed_not_shadowed_by_a_second_line(bluez_dir: Path) -> None:
    conf = bluez_conf_dir(bluez_dir) / "main.conf"
    conf.write_text("[General]\n#ControllerMode = dual\nControllerMode = bredr\n[LE]\nMinConnectionInterval=24\n")
    sourced(f"set_bluez_settings {conf} || true")
    written = conf.read_text()
    assert written.count("ControllerMode = le") == 1 and "bredr" not in written
    assert "#ControllerMode = dual" in written  # the comment was not the setting bluetoothd read
    assert "MinConnectionInterval = 6" in written and "=24" not in written


def test_a_usb_install_leaves_main_conf_alone(bluez_dir: Path) -> None:
    conf = bluez_conf_dir(bluez_dir) / "main.conf"
    result = sourced(f"install_bluez_conf usb {conf}")
    assert result.returncode == 0 and conf.read_text() == BLUEZ_MAIN_CONF, result
    assert not (conf.parent / "main.conf.voxkey-orig").exists()


def test_the_bluetoothd_dropin_runs_the_patched_daemon_with_the_packaged_arguments_and_voxkey_reads_it(
    bluez_dir: Path,
) -> None:
    """install.sh --bluetoothd-for-old-hosts writes it; voxkey reads it to stop refusing BlueZ 5.55-5.66 hosts."""
    from voxkey.transports.bluetooth import hostcompat

    unit = bluez_dir / "bluetooth.service"
    unit.write_text("[Service]\nType=dbus\nExecStart=/usr/libexec/bluetooth/bluetoothd -E\n")
    binary = bluez_dir / "bluetoothd"
    binary.write_bytes(b"\x7fELF")
    made = sourced(f"bluetoothd_dropin {binary} {unit}")
    assert made.returncode == 0, made
    lines = made.stdout.splitlines()
    assert lines[1:] == ["[Service]", "ExecStart=", f"ExecStart={binary} -E"]
    dropin = bluez_dir / "voxkey-bluetoothd.conf"
    dropin.write_text(made.stdout)
    assert hostcompat.single_notifications_bluetoothd(dropin) == binary
    declared = sourced('echo "$BLUETOOTHD_DROPIN"')
    assert declared.stdout.strip() == str(hostcompat.SINGLE_NOTIFICATIONS_DROPIN)  # one path, two readers
    bare = bluez_dir / "bare.service"
    bare.write_text("[Service]\nExecStart=-/usr/sbin/bluetoothd\n")
    assert sourced(f"bluetoothd_dropin {binary} {bare}").stdout.splitlines()[-1] == f"ExecStart={binary}"
