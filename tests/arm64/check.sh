#!/usr/bin/env bash
# The arm64 check: voxkey on the CPUs of the Pis it supports, emulated, before a user finds out on a real one.
#
# A Debian trixie arm64 root (the base of today's Raspberry Pi OS) runs under qemu-user with the CPU
# model of each Pi: cortex-a53 (Zero 2 W, Pi 3), cortex-a72 (Pi 4), cortex-a76 (Pi 5). In it, voxkey is
# installed from this checkout with pip (pywhispercpp's aarch64 wheel and the rest from PyPI), then
# `voxkey transcribe` transcribes recordings from ../shared/speech on each CPU model. The check fails if
# the emulated CPU meets an instruction it does not have (SIGILL: a wheel built for a newer ARM than the
# Pi's), or if any word differs from the reference transcript (Whisper's English normaliser + jiwer; the
# recordings are ones tiny.en transcribes without error on x86, so any error means broken arithmetic).
# Before that, a two-instruction program proves the CPU model is enforced: an ARMv8.1 atomic must be
# SIGILL on cortex-a53 and run on cortex-a76, or a SIGILL in voxkey could never have been seen.
#
# How arm64 binaries run here: binfmt_misc is mounted in a private mount namespace (unshare -m) with
# qemu-aarch64-static registered (flag F: the kernel holds the interpreter, so chroot needs no copy of
# it); QEMU_CPU picks the CPU model. The entry is the kernel's, not the namespace's (on Linux 6.18 here,
# every binfmt_misc mount of the same user namespace shares it), so each run registers its own name and
# removes it on exit: two runs at once must not unregister each other.
#
# Cached in $VOXKEY_TEST_CACHE (default ~/.cache/voxkey-tests): the debootstrapped root as a tarball
# (first run ~2-5 min to build) and pip's downloads/wheels for arm64 (evdev is compiled once).
# Needs root, debootstrap and qemu-user-static (apt). Not part of `python3 -m pytest`: .ci/run runs it
# after pytest (about 11 min from scratch on a quiet 2-core machine), or run it by hand (README, Tests).
#
# Usage: tests/arm64/check.sh [--cpus "cortex-a53 cortex-a72 cortex-a76"] [--model tiny.en-q8_0]
#                             [--speech "jfk 2412-153948-0002"] [--threads 2] [--keep]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SHARED=${VOXKEY_SHARED:-$(dirname "$REPO")/shared}
CACHE=${VOXKEY_TEST_CACHE:-$HOME/.cache/voxkey-tests}
RELEASE=trixie
# What the venv needs from apt: python3-dev, gcc and libc6-dev build evdev's C extension (no wheel on
# PyPI), libportaudio2 is sounddevice's library, ca-certificates lets pip reach PyPI.
PACKAGES=python3,python3-venv,python3-dev,gcc,libc6-dev,libportaudio2,ca-certificates
ROOT_TARBALL=$CACHE/$RELEASE-arm64-voxkey-root.tar
BINFMT=/proc/sys/fs/binfmt_misc
BINFMT_NAME=voxkey-aarch64-$$
# The ELF header of an aarch64 executable (e_machine 0xb7), as Debian's qemu-user-static registers it.
AARCH64_MAGIC='\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
AARCH64_MASK='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'

cpus="cortex-a53 cortex-a72 cortex-a76"
model=tiny.en-q8_0
speech="jfk 2412-153948-0002"
threads=2
keep=0

die() {
    echo "arm64 check: FAIL: $*" >&2
    exit 1
}
say() { echo "arm64 check: $*" >&2; }

while [[ $# -gt 0 ]]; do
    case $1 in
    --cpus) cpus=$2 && shift 2 ;;
    --model) model=$2 && shift 2 ;;
    --speech) speech=$2 && shift 2 ;;
    --threads) threads=$2 && shift 2 ;;
    --keep) keep=1 && shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' && exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done

[[ $(id -u) -eq 0 ]] || die "needs root (chroot, mount, binfmt_misc)"
command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
QEMU=$(command -v qemu-aarch64-static) || die "qemu-aarch64-static is missing: apt-get install qemu-user-static"
[[ -f $SHARED/models/ggml-$model.bin ]] || die "no model $SHARED/models/ggml-$model.bin (set VOXKEY_SHARED)"
known_cpus=$("$QEMU" -cpu help || true) # qemu exits 1 after help
for cpu in $cpus; do
    grep -qw -- "$cpu" <<<"$known_cpus" || die "this qemu ($($QEMU --version | head -1)) has no CPU model $cpu"
done

# Everything below runs in a private mount namespace: the binfmt_misc instance and every bind mount
# vanish with it, whatever way the script ends.
if [[ ${VOXKEY_ARM64_IN_NAMESPACE:-0} != 1 ]]; then
    export VOXKEY_ARM64_IN_NAMESPACE=1
    again=(--cpus "$cpus" --model "$model" --speech "$speech" --threads "$threads")
    [[ $keep == 0 ]] || again+=(--keep)
    exec unshare --mount --propagation private -- "$0" "${again[@]}"
fi

debian_mirror() {
    # The mirror this machine's apt already uses (deb822 or one-line sources), unless VOXKEY_DEBIAN_MIRROR.
    if [[ -n ${VOXKEY_DEBIAN_MIRROR:-} ]]; then
        echo "$VOXKEY_DEBIAN_MIRROR" && return
    fi
    local uri
    uri=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v -- '-security' | awk '{print $2; exit}')
    [[ -n $uri ]] || uri=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
    [[ -n $uri ]] || die "no Debian mirror configured for apt; set VOXKEY_DEBIAN_MIRROR"
    echo "$uri"
}

register_binfmt() {
    mount -t binfmt_misc binfmt_misc "$BINFMT" ||
        die "cannot mount binfmt_misc (container without it?); arm64 binaries cannot run without it here"
    if [[ ! -e $BINFMT/$BINFMT_NAME ]]; then
        printf '%s' ":$BINFMT_NAME:M::$AARCH64_MAGIC:$AARCH64_MASK:$QEMU:F" >"$BINFMT/register"
    fi
}

unregister_binfmt() {
    if [[ -e $BINFMT/$BINFMT_NAME ]]; then
        echo -1 >"$BINFMT/$BINFMT_NAME" || true
    fi
}

work=$(mktemp -d /tmp/voxkey-arm64.XXXXXX)
root=$work/root
cleanup() {
    unregister_binfmt
    if [[ $keep == 1 ]]; then
        say "kept $work"
    else
        # Unmount before deleting: rm must never reach /dev, ../shared or the pip cache through a bind mount.
        awk -v root="$root" 'index($2, root) == 1 {print $2}' /proc/self/mounts | sort -r |
            while read -r mountpoint; do umount -l "$mountpoint"; done
        if awk -v root="$root" 'index($2, root) == 1 {found = 1} END {exit !found}' /proc/self/mounts; then
            say "not deleting $work: something is still mounted in it"
        else
            rm -rf --one-file-system "$work"
        fi
    fi
}
trap cleanup EXIT

in_root() {
    # Run a shell script in the root on CPU model $1.
    local cpu=$1
    shift
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        QEMU_CPU="$cpu" PIP_CERT=/etc/ssl/certs/host-ca.crt VOXKEY_MODEL_DIR=/media/models \
        chroot "$root" /bin/bash -euo pipefail -c "$1"
}

build_root() {
    say "building the $RELEASE arm64 root (cached afterwards in $ROOT_TARBALL)"
    local mirror
    mirror=$(debian_mirror)
    debootstrap --foreign --arch=arm64 --variant=minbase --include="$PACKAGES" "$RELEASE" "$root" "$mirror" \
        >"$work/debootstrap.log" 2>&1 || die "debootstrap (first stage) failed: $(tail -5 "$work/debootstrap.log")"
    in_root cortex-a72 "/debootstrap/debootstrap --second-stage" >>"$work/debootstrap.log" 2>&1 ||
        die "debootstrap (second stage, emulated) failed: $(tail -5 "$work/debootstrap.log")"
    mkdir -p "$CACHE"
    tar --one-file-system -cpf "$ROOT_TARBALL.partial" -C "$root" .
    mv "$ROOT_TARBALL.partial" "$ROOT_TARBALL"
}

bind() {
    mkdir -p "$root$2"
    mount --bind "$1" "$root$2"
    [[ ${3:-} != ro ]] || mount -o remount,bind,ro "$root$2"
}

elapsed() { echo "$((SECONDS - $1)) s"; }

started=$SECONDS
register_binfmt
mkdir -p "$root"
step=$SECONDS
if [[ -f $ROOT_TARBALL ]]; then
    tar -xpf "$ROOT_TARBALL" -C "$root"
else
    build_root
fi
say "root ready ($(elapsed "$step"))"

cp /etc/resolv.conf "$root/etc/resolv.conf"
# Where HTTPS goes through a proxy with its own CA, pip in the root trusts it as the host's pip does.
for variable in PIP_CERT SSL_CERT_FILE REQUESTS_CA_BUNDLE; do
    if [[ -f ${!variable:-} ]]; then
        cp "${!variable}" "$root/etc/ssl/certs/host-ca.crt"
        break
    fi
done
[[ -f $root/etc/ssl/certs/host-ca.crt ]] || ln -sf ca-certificates.crt "$root/etc/ssl/certs/host-ca.crt"
mkdir -p "$CACHE/pip-arm64" "$root/usr/src/voxkey"
tar -C "$REPO" --exclude=.git --exclude=__pycache__ --exclude='*.egg-info' --exclude=.mypy_cache \
    --exclude=.ruff_cache --exclude=.pytest_cache --exclude=.hypothesis --exclude=build -cf - . |
    tar -C "$root/usr/src/voxkey" -xf -
mount -t proc proc "$root/proc"
bind /dev /dev
bind "$CACHE/pip-arm64" /root/.cache/pip
bind "$SHARED/models" /media/models ro
bind "$SHARED/speech" /media/speech ro

# The CPU model is enforced, and a SIGILL is seen as one: LDADD (ARMv8.1 LSE atomics) is absent on
# the A53 and present on the A76.
cat >"$root/tmp/lse.c" <<'EOF'
int main(void) {
    long counter = 0, one = 1, old;
    __asm__ volatile("ldadd %2, %0, [%1]" : "=r"(old) : "r"(&counter), "r"(one) : "memory");
    return counter == 1 ? 0 : 1;
}
EOF
in_root cortex-a76 "gcc -O1 -march=armv8.1-a -o /tmp/lse /tmp/lse.c"
set +e
in_root cortex-a53 /tmp/lse 2>/dev/null
on_a53=$?
in_root cortex-a76 /tmp/lse
on_a76=$?
set -e
[[ $on_a53 -eq 132 ]] || die "an ARMv8.1 atomic on cortex-a53 exited $on_a53, not SIGILL (132): CPU model not enforced"
[[ $on_a76 -eq 0 ]] || die "an ARMv8.1 atomic on cortex-a76 exited $on_a76: CPU model not enforced"
say "CPU models enforced: ARMv8.1 atomic is SIGILL on cortex-a53, runs on cortex-a76"

# Installed on the oldest CPU: whatever pip runs or builds must run there too.
step=$SECONDS
first_cpu=${cpus%% *}
in_root "$first_cpu" "python3 -m venv /opt/voxkey && /opt/voxkey/bin/pip install --quiet --disable-pip-version-check \
    /usr/src/voxkey" >"$work/pip.log" 2>&1 || die "pip install on $first_cpu failed: $(tail -20 "$work/pip.log")"
say "pip install on $first_cpu ($(elapsed "$step")): $(in_root "$first_cpu" \
    "/opt/voxkey/bin/pip list --format=freeze 2>/dev/null | grep -iE '^(pywhispercpp|numpy)='" | tr '\n' ' ')"

files=()
for id in $speech; do
    [[ -f $SHARED/speech/$id.wav ]] || die "no recording $SHARED/speech/$id.wav"
    files+=("/media/speech/$id.wav")
done

failed=0
for cpu in $cpus; do
    step=$SECONDS
    set +e
    in_root "$cpu" "/opt/voxkey/bin/voxkey transcribe --model $model --threads $threads --json ${files[*]}" \
        >"$work/$cpu.jsonl" 2>"$work/$cpu.err"
    status=$?
    set -e
    if [[ $status -eq 132 ]] || grep -q 'Illegal instruction' "$work/$cpu.err"; then
        say "$cpu: SIGILL (an instruction this CPU does not have): $(tail -3 "$work/$cpu.err")"
        failed=1
        continue
    fi
    if [[ $status -ne 0 ]]; then
        say "$cpu: voxkey transcribe exited $status: $(tail -10 "$work/$cpu.err")"
        failed=1
        continue
    fi
    # Word by word against the reference, after Whisper's English normaliser (on the host: the test extras).
    if ! python3 - "$SHARED/speech/manifest.tsv" "$work/$cpu.jsonl" "$cpu" "$(elapsed "$step")" <<'EOF'; then
import json
import sys
from pathlib import Path

import jiwer
from whisper_normalizer.english import EnglishTextNormalizer

manifest, results, cpu, took = sys.argv[1:]
normalise = EnglishTextNormalizer()
rows = Path(manifest).read_text(encoding="utf-8").splitlines()[1:]
reference = {row.split("\t")[0]: row.split("\t")[4] for row in rows}
wrong = 0
for line in Path(results).read_text(encoding="utf-8").splitlines():
    result = json.loads(line)
    name = Path(result["file"]).stem
    expected, got = normalise(reference[name]), normalise(result["text"])
    error = jiwer.wer(expected, got or "<empty>")
    print(f"arm64 check: {cpu}: {name} ({result['audio_s']:.1f} s audio, whisper {result['compute_s']:.1f} s): "
          f"WER {error:.3f}: {result['text'].strip()!r}", file=sys.stderr)
    if error > 0:
        print(f"arm64 check: {cpu}: {name}: expected {expected!r}", file=sys.stderr)
        wrong += 1
print(f"arm64 check: {cpu}: done in {took}", file=sys.stderr)
sys.exit(1 if wrong else 0)
EOF
        failed=1
    fi
done

say "total $(elapsed "$started")"
[[ $failed -eq 0 ]] || die "see above"
say "OK on $cpus"
