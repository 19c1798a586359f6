#!/usr/bin/env bash
# voxkey installer for Raspberry Pi OS (64-bit) bookworm (Debian 12) or trixie (Debian 13): one command, safe to run again.
#
#   sudo ./install.sh                          install or update from this checkout
#   sudo ./install.sh --config-example bluetooth
#   sudo ./install.sh --model-from DIR         copy the model from DIR instead of downloading it
#   sudo ./install.sh --bluetoothd-for-old-hosts   also type to BlueZ 5.55-5.66 hosts (Debian 12, Ubuntu 22.04)
#   sudo ./install.sh --uninstall [--purge]    remove voxkey (--purge: config, models and user too)
#
# What it does: apt packages; a Python venv in /opt/voxkey/venv with voxkey in it;
# the system user `voxkey` (groups audio, gpio, spi, bluetooth); a udev rule giving
# /dev/hidg0 to group voxkey; /etc/voxkey/config.yaml from examples/ (never
# overwritten); USB device mode (dtoverlay=dwc2 in config.txt, dwc2 + libcomposite
# in /etc/modules-load.d/voxkey.conf); with leds.kind apa102, spidev and
# dtparam=spi=on in config.txt; the whisper model via `voxkey models download`; the
# systemd units, enabled; with a Bluetooth transport, LE-only mode, the device ID, Just Works
# re-pairing through voxkey's agent, one ATT channel and a short connection interval in
# /etc/bluetooth/main.conf. Every step checks first, so a second run changes
# nothing and an interrupted run can simply be repeated.
#
# Environment overrides (tests, unusual systems): VOXKEY_ROOT_PREFIX prefixes
# /boot paths, VOXKEY_SKIP_APT=1 skips apt-get.
set -euo pipefail

readonly PREFIX=/opt/voxkey
readonly VENV=$PREFIX/venv
readonly CONFIG_DIR=/etc/voxkey
readonly STATE_DIR=/var/lib/voxkey
readonly MODEL_DIR=$STATE_DIR/models
readonly SBIN=/usr/local/sbin
readonly SHARE=/usr/local/share/voxkey
readonly UNIT_DIR=/etc/systemd/system
readonly UDEV_RULE=/etc/udev/rules.d/70-voxkey.rules
readonly MODULES_CONF=/etc/modules-load.d/voxkey.conf
# Before modules-load.d, install.sh kept a marked block in /etc/modules, which trixie's kmod calls
# obsolete; an existing block is moved to MODULES_CONF and never written again.
readonly OLD_MODULES_FILE=/etc/modules
readonly USER_NAME=voxkey
readonly OLD_HOSTS_BLUETOOTHD_DIR=/usr/local/libexec/voxkey
readonly BLUETOOTHD_DROPIN=$UNIT_DIR/bluetooth.service.d/voxkey-bluetoothd.conf
readonly PACKAGED_BLUETOOTH_UNIT=/lib/systemd/system/bluetooth.service
readonly BEGIN_MARK="# >>> voxkey (install.sh; removed by install.sh --uninstall) >>>"
readonly END_MARK="# <<< voxkey <<<"
readonly APT_PACKAGES=(
    python3 python3-venv python3-dev gcc libc6-dev # the venv; gcc builds evdev's small C extension
    libportaudio2 alsa-utils                        # microphone (sounddevice) and arecord for checks
    bluez dbus                                      # Bluetooth LE keyboard
    systemd                                         # the service (always there on Raspberry Pi OS)
    procps                                          # kill: `systemctl reload voxkey` (ExecReload=)
    ca-certificates                                 # model download over HTTPS
)

# What bluetoothd must do for voxkey's keyboard (hardware/bluetooth.md): LE only (in dual mode 5.66 crashed
# after an LE pairing), the PnP ID of voxkey's Device Information service, one ATT bearer (with Enhanced
# ATT's extra channels a key report overtook the one before it: a letter lost), a bonded host that forgot
# voxkey may pair again with Just Works if voxkey's agent agrees (it does only in pairing mode; bluetoothd's
# default "never" refused it for good), and a keyboard's short connection interval (units of 1.25 ms:
# 7.5-15 ms). Section, key, value.
readonly BLUEZ_SETTINGS=(
    "General ControllerMode le"
    "General DeviceID usb:1d6b:0104:0100"
    "General JustWorksRepairing confirm"
    "GATT Channels 1"
    "LE MinConnectionInterval 6"
    "LE MaxConnectionInterval 12"
)

SOURCE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BOOT_PREFIX=${VOXKEY_ROOT_PREFIX:-}
REBOOT_NEEDED=0

say() { echo "voxkey-install: $*"; }
die() {
    echo "voxkey-install: error: $*" >&2
    exit 1
}

usage() {
    sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

booted_with_systemd() { [[ -d /run/systemd/system ]]; }

# --- small idempotent helpers -------------------------------------------------------------------

# Remove our marked block from a file (no-op when absent).
remove_block() {
    local file=$1
    [[ -f $file ]] || return 0
    if grep -qF "$BEGIN_MARK" "$file"; then
        sed -i "\|^${BEGIN_MARK}\$|,\|^${END_MARK}\$|d" "$file"
        return 0
    fi
    return 0
}

# Make our marked block in FILE hold exactly LINES; 0 = unchanged, 1 = changed.
ensure_block() {
    local file=$1
    shift
    local wanted current
    wanted=$(printf '%s\n' "$BEGIN_MARK" "$@" "$END_MARK")
    current=$(sed -n "\|^${BEGIN_MARK}\$|,\|^${END_MARK}\$|p" "$file" 2>/dev/null || true)
    if [[ $current == "$wanted" ]]; then
        return 0
    fi
    remove_block "$file"
    printf '%s\n' "$wanted" >>"$file"
    return 1
}

# A line present outside our block (the user or the image already has it).
has_own_line() {
    local file=$1 pattern=$2
    [[ -f $file ]] || return 1
    sed "\|^${BEGIN_MARK}\$|,\|^${END_MARK}\$|d" "$file" | grep -Eq "$pattern"
}

# --- install steps ------------------------------------------------------------------------------

# Raspberry Pi OS today is trixie (Debian 13); many Pis still run bookworm (Debian 12). Both are
# tested; anything else may work but gets a warning, not a refusal.
check_release() {
    local codename=$1 pretty=$2
    case $codename in
    bookworm | trixie) ;;
    *) say "warning: made for Raspberry Pi OS / Debian bookworm (12) or trixie (13), this is ${pretty:-unknown}" ;;
    esac
}

# pywhispercpp (whisper.cpp) has wheels for 64-bit ARM and x86 only: on a 32-bit OS pip would try to
# compile it for a long time and then fail. Checked first, before anything changes.
check_architecture() {
    local arch=$1
    case $arch in
    arm64 | amd64) ;;
    armhf | armel | i386)
        die "this is a 32-bit OS ($arch): voxkey's speech recognition (pywhispercpp) needs a 64-bit OS." \
            "Install Raspberry Pi OS (64-bit) with Raspberry Pi Imager (every Pi from the 3 and the Zero 2 W on runs it), then run install.sh again"
        ;;
    *) say "warning: untested architecture ${arch:-unknown} (voxkey is tested on arm64 and amd64)" ;;
    esac
}

check_system() {
    if command -v dpkg >/dev/null; then
        check_architecture "$(dpkg --print-architecture)"
    fi
    [[ $(id -u) -eq 0 ]] || die "run as root: sudo $0"
    if [[ -r /etc/os-release ]]; then
        # shellcheck disable=SC1091 # present on every Debian system, not part of this repository
        . /etc/os-release
        check_release "${VERSION_CODENAME:-}" "${PRETTY_NAME:-}"
    fi
    [[ -f $SOURCE_DIR/pyproject.toml ]] || die "run install.sh from a voxkey checkout ($SOURCE_DIR has no pyproject.toml)"
}

# The board's name from the device tree ("Raspberry Pi 5 Model B Rev 1.0"); empty off a Pi.
board_model() {
    local file=$1
    if [[ -r $file ]]; then
        tr -d '\0' <"$file"
    fi
}

# The Pi 5 family (Pi 5, Pi 500, Compute Module 5) has its GPIO on the RP1 chip: of gpiozero's
# backends only lgpio drives it.
is_pi5() {
    case $1 in
    "Raspberry Pi 5"* | "Raspberry Pi Compute Module 5"*) return 0 ;;
    *) return 1 ;;
    esac
}

apt_knows() { apt-cache show "$1" >/dev/null 2>&1; }

# The apt package for gpiozero's pin backend, printed: python3-lgpio wherever apt knows it (Raspberry
# Pi OS's own archive has it; the venv sees system packages). Debian has none and PyPI's lgpio has no
# aarch64 wheel for Python 3.13, so on a Pi 5, where nothing else drives the GPIO, its absence
# stops the install here rather than the button at run time.
gpio_package() {
    local model=$1
    if apt_knows python3-lgpio; then
        echo python3-lgpio
    elif is_pi5 "$model" && ! python3 -c 'import lgpio' 2>/dev/null; then
        die "this is a $model: its GPIO (the button, the LEDs) needs lgpio, and apt has no python3-lgpio." \
            "Raspberry Pi OS has it in its own archive (archive.raspberrypi.com): install on Raspberry Pi OS," \
            "or add that archive to apt's sources, or install lgpio for the system's python3; then run install.sh again"
    fi
}

install_apt_packages() {
    if [[ ${VOXKEY_SKIP_APT:-0} == 1 ]]; then
        say "skipping apt packages (VOXKEY_SKIP_APT=1)"
        return
    fi
    local packages=("${APT_PACKAGES[@]}") model gpio
    model=$(board_model /proc/device-tree/model)
    if is_pi5 "$model" && ! apt_knows python3-lgpio; then
        apt-get update -qq # a fresh image may not have package lists yet
    fi
    gpio=$(gpio_package "$model")
    if [[ -n $gpio ]]; then
        packages+=("$gpio")
    fi
    if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
        say "installing apt packages: ${packages[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
    else
        say "apt packages already installed"
    fi
}

ensure_group() {
    getent group "$1" >/dev/null || groupadd --system "$1"
}

install_user() {
    local group
    for group in voxkey gpio spi bluetooth audio; do
        ensure_group "$group"
    done
    if ! id "$USER_NAME" >/dev/null 2>&1; then
        say "creating system user $USER_NAME"
        useradd --system --gid voxkey --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin \
            --comment "voxkey voice keyboard" "$USER_NAME"
    fi
    usermod -aG audio,gpio,spi,bluetooth "$USER_NAME"
}

install_venv() {
    if [[ ! -x $VENV/bin/python ]]; then
        say "creating the Python environment in $VENV"
        mkdir -p "$PREFIX"
        python3 -m venv --system-site-packages "$VENV"
    fi
    say "installing voxkey into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$SOURCE_DIR"
    ln -sfn "$VENV/bin/voxkey" /usr/local/bin/voxkey
    install -m 0644 "$SOURCE_DIR/README.md" "$PREFIX/README.md"
}

install_gadget_files() {
    install -d "$SBIN" "$SHARE"
    install -m 0755 "$SOURCE_DIR/gadget/voxkey-gadget" "$SBIN/voxkey-gadget"
    install -m 0644 "$SOURCE_DIR/gadget/keyboard-report-descriptor.hex" "$SHARE/keyboard-report-descriptor.hex"
}

install_udev_rule() {
    local rule='SUBSYSTEM=="hidg", KERNEL=="hidg[0-9]*", GROUP="voxkey", MODE="0660"'
    local content
    content=$(printf '# voxkey: the USB keyboard gadget belongs to the voxkey service user.\n%s\n' "$rule")
    if [[ ! -f $UDEV_RULE ]] || [[ $(cat "$UDEV_RULE") != "$content" ]]; then
        install -d "$(dirname "$UDEV_RULE")"
        printf '%s\n' "$content" >"$UDEV_RULE"
        say "udev rule $UDEV_RULE written"
        if [[ -d /run/udev ]] && command -v udevadm >/dev/null; then
            udevadm control --reload-rules || true
            udevadm trigger --subsystem-match=hidg || true
        fi
    fi
}

boot_config_file() {
    local candidate
    for candidate in "$BOOT_PREFIX/boot/firmware/config.txt" "$BOOT_PREFIX/boot/config.txt"; do
        if [[ -f $candidate ]]; then
            echo "$candidate"
            return
        fi
    done
}

# config.txt: USB device mode always, SPI when the config drives APA102 LEDs (argument 1); one
# marked block holds whichever of the two the file does not already have.
install_boot_config() {
    local wants_spi=$1 config_txt lines=() enabled=()
    config_txt=$(boot_config_file)
    if [[ -z $config_txt ]]; then
        say "no Raspberry Pi config.txt found: skipping dtoverlay=dwc2 (USB gadget mode needs it on a Pi)"
        if [[ $wants_spi == 1 ]]; then
            say "no Raspberry Pi config.txt found: skipping dtparam=spi=on (the APA102 LEDs need it on a Pi)"
        fi
        return
    fi
    if has_own_line "$config_txt" '^[[:space:]]*dtoverlay=dwc2'; then
        say "$config_txt already enables dwc2"
    else
        lines+=("dtoverlay=dwc2,dr_mode=peripheral")
        enabled+=("USB device mode")
    fi
    if [[ $wants_spi == 1 ]]; then
        if has_own_line "$config_txt" '^[[:space:]]*dtparam=spi=on'; then
            say "$config_txt already enables SPI"
        else
            lines+=("dtparam=spi=on")
            enabled+=("SPI (APA102 LEDs)")
        fi
    fi
    if [[ ${#lines[@]} -eq 0 ]]; then
        remove_block "$config_txt"
    elif ! ensure_block "$config_txt" "[all]" "${lines[@]}"; then
        say "enabled ${enabled[0]}${enabled[1]:+ and ${enabled[1]}} in $config_txt"
        REBOOT_NEEDED=1
    fi
}

# "spi" when the config drives APA102 LEDs on the SPI bus (ReSpeaker 2-Mic), "gpio" when on two GPIO
# pins (Voice Bonnet: nothing to install), else nothing.
configured_apa102() {
    "$VENV/bin/python" -c 'from voxkey import config
leds = config.load("/etc/voxkey/config.yaml").leds
if leds.kind == "apa102":
    print("spi" if leds.apa102.uses_spi else "gpio")'
}

# APA102 LEDs on the SPI bus are written to /dev/spidev* through the Python module spidev, which
# nothing else needs: it comes with voxkey's "apa102" extra, into the venv.
install_spidev() {
    if "$VENV/bin/python" -c 'import spidev' 2>/dev/null; then
        return
    fi
    say "installing spidev for the APA102 LEDs"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${SOURCE_DIR}[apa102]"
}

# dwc2 (the USB device controller) and libcomposite (configfs gadgets) load at boot from our own
# modules-load.d file, on bookworm and trixie alike; a block an older install.sh left in /etc/modules
# moves there (the modules already load at boot then, so that alone needs no reboot).
install_modules_conf() {
    local content migrated=0
    content=$(printf '%s\n' "# voxkey: USB keyboard gadget (install.sh; removed by install.sh --uninstall)" dwc2 libcomposite)
    if [[ -f $OLD_MODULES_FILE ]] && grep -qxF "$BEGIN_MARK" "$OLD_MODULES_FILE"; then
        remove_block "$OLD_MODULES_FILE"
        migrated=1
    fi
    if [[ -f $MODULES_CONF ]] && [[ $(cat "$MODULES_CONF") == "$content" ]]; then
        [[ $migrated == 0 ]] || say "removed the old voxkey block from $OLD_MODULES_FILE ($MODULES_CONF has it)"
        return
    fi
    install -d "$(dirname "$MODULES_CONF")"
    printf '%s\n' "$content" >"$MODULES_CONF"
    if [[ $migrated == 1 ]]; then
        say "moved dwc2, libcomposite from $OLD_MODULES_FILE to $MODULES_CONF"
    else
        say "added dwc2, libcomposite to $MODULES_CONF"
        REBOOT_NEEDED=1
    fi
}

install_config() {
    local example=$1
    install -d -m 0755 "$CONFIG_DIR"
    if [[ -e $CONFIG_DIR/config.yaml ]]; then
        say "keeping the existing $CONFIG_DIR/config.yaml"
    else
        install -m 0644 "$SOURCE_DIR/examples/$example.yaml" "$CONFIG_DIR/config.yaml"
        say "wrote $CONFIG_DIR/config.yaml from examples/$example.yaml"
    fi
    "$VENV/bin/voxkey" config check "$CONFIG_DIR/config.yaml"
}

configured_transport() {
    "$VENV/bin/python" -c 'from voxkey import config; print(config.load("/etc/voxkey/config.yaml").output.transport)'
}

# bluetoothd reads only main.conf (no drop-in directory), so each setting is written in place: an
# active line for the key is changed, else its commented default ("#ControllerMode = dual") becomes
# the setting, else it is added under its section. The file as it was before voxkey first changed
# it is kept as main.conf.voxkey-orig, which --uninstall puts back. 0 = unchanged, 1 = changed.
set_bluez_settings() {
    local file=$1 rc=0
    [[ -e $file.voxkey-orig ]] || cp -p "$file" "$file.voxkey-orig" || die "cannot back up $file"
    python3 - "$file" "${BLUEZ_SETTINGS[@]}" <<'PY' || rc=$?
import re
import sys

path, settings = sys.argv[1], [entry.split(" ", 2) for entry in sys.argv[2:]]
lines = open(path).read().splitlines()


def place(section, key):
    """(index of the line to replace, or of the section's last line to insert after, or None; replace?)."""
    current, last, commented = None, None, None
    for index, line in enumerate(lines):
        found = re.match(r"\s*\[(.+?)\]\s*$", line)
        if found:
            current = found.group(1)
        if current != section:
            continue
        if line.strip():
            last = index
        entry = re.match(r"\s*(#?)\s*" + key + r"\s*=", line)
        if entry and not entry.group(1):
            return index, True
        if entry and commented is None:
            commented = index
    return (commented, True) if commented is not None else (last, False)


before = list(lines)
for section, key, value in settings:
    index, replace = place(section, key)
    if index is None:
        lines += ["", f"[{section}]", f"{key} = {value}"]
    elif replace:
        lines[index] = f"{key} = {value}"
    else:
        lines.insert(index + 1, f"{key} = {value}")
if lines != before:
    open(path, "w").write("\n".join(lines) + "\n")
sys.exit(10 if lines != before else 0)
PY
    case $rc in
    0) return 0 ;;
    10) return 1 ;;
    *) die "could not update $file (see the Python error above)" ;;
    esac
}

install_bluez_conf() {
    local transport=$1 file=$2
    [[ $transport == bluetooth || $transport == both ]] || return 0
    if [[ ! -f $file ]]; then
        say "warning: no $file (bluez not installed?): the Bluetooth keyboard settings were not written"
        return 0
    fi
    if set_bluez_settings "$file"; then
        return 0
    fi
    say "set LE-only mode, voxkey's device ID, Just Works re-pairing through voxkey's agent, one ATT channel and a 7.5-15 ms connection interval in $file (was: $file.voxkey-orig)"
    if booted_with_systemd; then
        systemctl try-restart bluetooth.service || say "warning: bluetoothd did not restart; reboot to apply $file"
    fi
}

restore_bluez_conf() {
    local file=$1
    if [[ -f $file.voxkey-orig ]]; then
        mv -f "$file.voxkey-orig" "$file"
        say "restored $file"
    fi
}

# --bluetoothd-for-old-hosts (hardware/bluetooth.md, "Hosts that type nothing"): the hog driver of BlueZ
# 5.55-5.66 hosts drops the Multiple Handle Value Notifications every packaged bluetoothd sends it. This
# Pi's own BlueZ source package, with one change (hardware/bluez/single-notifications.patch), is built
# into OLD_HOSTS_BLUETOOTHD_DIR and a systemd drop-in runs it with the packaged unit's arguments; voxkey
# reads the drop-in to know it may type to such hosts. Re-run after an upgrade of the bluez package.
# The drop-in for bluetooth.service that runs BINARY with the arguments of the packaged UNIT's ExecStart.
bluetoothd_dropin() {
    local binary=$1 unit=$2 command arguments=""
    command=$(sed -n 's/^ExecStart=[-@:+!]*//p' "$unit" | tail -n 1)
    [[ -n $command ]] || die "no ExecStart= in $unit: cannot replace bluetoothd"
    [[ $command == *" "* ]] && arguments=" ${command#* }"
    printf '%s\n' "# install.sh --bluetoothd-for-old-hosts (voxkey); removed by install.sh --uninstall" \
        "[Service]" "ExecStart=" "ExecStart=$binary$arguments"
}

install_old_hosts_bluetoothd() {
    local wanted
    say "building bluetoothd with single notifications from this system's BlueZ source (minutes on a Pi)"
    "$SOURCE_DIR/hardware/bluez/build-bluetoothd.sh" "$OLD_HOSTS_BLUETOOTHD_DIR" \
        --patch "$SOURCE_DIR/hardware/bluez/single-notifications.patch" ||
        die "could not build bluetoothd (see above); the packaged bluetoothd is unchanged"
    wanted=$(bluetoothd_dropin "$OLD_HOSTS_BLUETOOTHD_DIR/bluetoothd" "$PACKAGED_BLUETOOTH_UNIT")
    if [[ -f $BLUETOOTHD_DROPIN && $(cat "$BLUETOOTHD_DROPIN") == "$wanted" ]]; then
        say "bluetoothd for old BlueZ hosts already in place ($BLUETOOTHD_DROPIN)"
        return 0
    fi
    install -d -m 0755 "${BLUETOOTHD_DROPIN%/*}"
    printf '%s\n' "$wanted" >"$BLUETOOTHD_DROPIN"
    say "bluetooth.service now runs $OLD_HOSTS_BLUETOOTHD_DIR/bluetoothd ($BLUETOOTHD_DROPIN)"
    if booted_with_systemd; then
        systemctl daemon-reload
        systemctl try-restart bluetooth.service || say "warning: bluetoothd did not restart; reboot to apply it"
    fi
}

remove_old_hosts_bluetoothd() {
    [[ -f $BLUETOOTHD_DROPIN || -d $OLD_HOSTS_BLUETOOTHD_DIR ]] || return 0
    rm -f "$BLUETOOTHD_DROPIN"
    rmdir "${BLUETOOTHD_DROPIN%/*}" 2>/dev/null || true
    rm -rf "$OLD_HOSTS_BLUETOOTHD_DIR"
    if booted_with_systemd; then
        systemctl daemon-reload
        systemctl try-restart bluetooth.service || true
    fi
    say "bluetooth.service runs the packaged bluetoothd again"
}

configured_model() {
    "$VENV/bin/python" -c 'from voxkey import config; print(config.load("/etc/voxkey/config.yaml").asr.model)'
}

install_model() {
    local model_from=$1 skip=$2 model file
    install -d -m 0755 -o "$USER_NAME" -g voxkey "$STATE_DIR" "$MODEL_DIR"
    if [[ $skip == 1 ]]; then
        say "skipping the model (--no-model); voxkey doctor will say which one is missing"
        return
    fi
    model=$(configured_model)
    file=$MODEL_DIR/ggml-$model.bin
    if [[ -f $file ]]; then
        say "model $model already in $MODEL_DIR"
    elif [[ -n $model_from ]]; then
        [[ -f $model_from/ggml-$model.bin ]] || die "$model_from has no ggml-$model.bin"
        install -m 0644 "$model_from/ggml-$model.bin" "$file"
        if [[ -f $model_from/SHA256SUMS ]]; then
            grep " \*\{0,1\}ggml-$model.bin\$" "$model_from/SHA256SUMS" >"$MODEL_DIR/SHA256SUMS" || rm -f "$MODEL_DIR/SHA256SUMS"
        fi
        say "copied model $model from $model_from"
    else
        say "downloading model $model"
        VOXKEY_MODEL_DIR=$MODEL_DIR "$VENV/bin/voxkey" models download "$model"
    fi
    chown -R "$USER_NAME:voxkey" "$MODEL_DIR"
}

# asr.remote (a speech server on the LAN): voxkey.service allows no IP at all; while the config turns the
# server on, a drop-in allows IPv4/IPv6 to exactly its address (voxkey remote systemd), else it is removed.
install_remote_dropin() {
    local dropin_dir="$UNIT_DIR/voxkey.service.d"
    if "$VENV/bin/python" -c 'from voxkey import config
raise SystemExit(0 if config.load("/etc/voxkey/config.yaml").asr.remote.enabled else 1)'; then
        "$VENV/bin/voxkey" remote systemd --config /etc/voxkey/config.yaml --write "$dropin_dir/remote.conf"
    else
        rm -f "$dropin_dir/remote.conf"
        rmdir "$dropin_dir" 2>/dev/null || true
    fi
}

install_units() {
    local unit
    for unit in voxkey.service voxkey-gadget.service; do
        install -m 0644 "$SOURCE_DIR/systemd/$unit" "$UNIT_DIR/$unit"
    done
    install_remote_dropin
    if booted_with_systemd; then
        systemctl daemon-reload
    fi
    systemctl enable voxkey-gadget.service voxkey.service >/dev/null 2>&1 ||
        systemctl --root=/ enable voxkey-gadget.service voxkey.service
    say "services enabled: voxkey-gadget.service voxkey.service"
}

start_units() {
    local no_start=$1
    if [[ $no_start == 1 ]] || ! booted_with_systemd; then
        say "not starting the services now (they start at boot)"
        return
    fi
    if [[ $REBOOT_NEEDED == 1 ]]; then
        say "config.txt was just changed (USB device mode, SPI): reboot to start voxkey (sudo reboot)"
        return
    fi
    systemctl restart voxkey-gadget.service || say "warning: the USB gadget did not come up; see: voxkey doctor"
    systemctl restart voxkey.service
    say "voxkey is running: systemctl status voxkey"
}

do_install() {
    local example=$1 model_from=$2 no_model=$3 no_start=$4 old_hosts=$5
    check_system
    install_apt_packages
    install_user
    install_venv
    install_gadget_files
    install_udev_rule
    install_config "$example"
    local wants_spi=0
    if [[ $(configured_apa102) == spi ]]; then
        wants_spi=1
        install_spidev
    fi
    install_boot_config "$wants_spi"
    install_modules_conf
    install_bluez_conf "$(configured_transport)" /etc/bluetooth/main.conf
    if [[ $old_hosts == 1 ]]; then
        install_old_hosts_bluetoothd
    fi
    install_model "$model_from" "$no_model"
    install_units
    start_units "$no_start"
    say "done. Check everything with: voxkey doctor"
}

# --- uninstall ----------------------------------------------------------------------------------

do_uninstall() {
    local purge=$1 unit config_txt
    [[ $(id -u) -eq 0 ]] || die "run as root: sudo $0 --uninstall"
    for unit in voxkey.service voxkey-gadget.service; do
        if booted_with_systemd; then
            systemctl disable --now "$unit" >/dev/null 2>&1 || true
        else
            systemctl disable "$unit" >/dev/null 2>&1 || true
        fi
        rm -f "$UNIT_DIR/$unit"
    done
    rm -f "$UNIT_DIR/voxkey.service.d/remote.conf"
    rmdir "$UNIT_DIR/voxkey.service.d" 2>/dev/null || true
    if booted_with_systemd; then
        systemctl daemon-reload
    fi
    rm -f "$UDEV_RULE" "$SBIN/voxkey-gadget" /usr/local/bin/voxkey
    rm -rf "$SHARE" "$PREFIX"
    rm -f "$MODULES_CONF"
    remove_block "$OLD_MODULES_FILE"
    restore_bluez_conf /etc/bluetooth/main.conf
    remove_old_hosts_bluetoothd
    config_txt=$(boot_config_file)
    if [[ -n $config_txt ]]; then
        remove_block "$config_txt"
    fi
    if [[ $purge == 1 ]]; then
        rm -rf "$CONFIG_DIR" "$STATE_DIR"
        if id "$USER_NAME" >/dev/null 2>&1; then
            userdel "$USER_NAME"
        fi
        if getent group voxkey >/dev/null; then
            groupdel voxkey
        fi
        say "removed voxkey, its config, models and user"
    else
        say "removed voxkey (kept $CONFIG_DIR, $STATE_DIR and user $USER_NAME; --purge removes them)"
    fi
}

main() {
    local action=install purge=0 example=usb model_from="" no_model=0 no_start=0 old_hosts=0
    while [[ $# -gt 0 ]]; do
        case $1 in
        --uninstall) action=uninstall ;;
        --purge) purge=1 ;;
        --config-example)
            [[ $# -ge 2 ]] || usage 2
            example=$2
            shift
            ;;
        --model-from)
            [[ $# -ge 2 ]] || usage 2
            model_from=$(cd "$2" && pwd)
            shift
            ;;
        --no-model) no_model=1 ;;
        --no-start) no_start=1 ;;
        --bluetoothd-for-old-hosts) old_hosts=1 ;;
        -h | --help) usage 0 ;;
        *) usage 2 ;;
        esac
        shift
    done
    [[ -f $SOURCE_DIR/examples/$example.yaml ]] || die "no example config examples/$example.yaml"
    if [[ $action == uninstall ]]; then
        do_uninstall "$purge"
    else
        do_install "$example" "$model_from" "$no_model" "$no_start" "$old_hosts"
    fi
}

# Sourced (tests call single functions), the script only defines them.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
