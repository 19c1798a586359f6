"""Storage faults (issue #14): a damaged model, a full or read-only state directory, a read-only root.

- A truncated or structurally damaged model is refused when ``voxkey run`` starts, with one line that
  says to download it again, and ``voxkey doctor`` names the exact command, including the folder the
  damaged copy lies in (downloaded anywhere else it would still be found first).
- The daemon writes nothing at run time: with ``/`` read-only and the state directory
  (``/var/lib/voxkey``, where the models live) full or read-only, a whole dictation still runs and types
  its text. Checked in a private mount namespace, which needs root (CI runs as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon_harness import MODEL, SHORT
from voxkey.asr import AsrSettings
from voxkey.cli import main
from voxkey.config import Config
from voxkey.doctor import Doctor, SystemPaths
from voxkey.models import find_model, model_filename

REPO = Path(__file__).resolve().parents[1]
TEXT = "the valley of the shadow of death"


def damaged_copies(good: bytes) -> dict[str, bytes]:
    """The ways a model file breaks: a download cut short, an SD card's zeroed block, a wrong file."""
    zeroed = bytearray(good)
    zeroed[200:4296] = bytes(4096)  # inside the vocabulary: every length after it is wrong
    return {
        "empty": b"",
        "cut-at-header": good[:40],
        "cut-mid-tensors": good[: len(good) // 2],
        "one-byte-short": good[:-1],
        "zeroed-block": bytes(zeroed),
        "html-error-page": b"<html><body>502 Bad Gateway</body></html>\n" * 50,
    }


@pytest.fixture(scope="module")
def good_model() -> bytes:
    return find_model(MODEL).read_bytes()


def config_file(tmp_path: Path, model: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"button:\n  source: terminal\nleds:\n  kind: none\nasr:\n  model: {model}\n  threads: 1\n"
        "output:\n  transport: terminal\n"
    )
    return path


@pytest.mark.parametrize("damage", list(damaged_copies(b"x" * 10_000)))
def test_voxkey_run_refuses_a_damaged_model_with_one_line(
    tmp_path: Path, good_model: bytes, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / model_filename(MODEL)
    broken.write_bytes(damaged_copies(good_model)[damage])
    code = main(["run", "--config", str(config_file(tmp_path, str(broken))), "--audio-file", str(SHORT)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1].startswith(f"voxkey: error: model file {broken} is ")
    assert "download it again" in err[-1]
    assert not any("Traceback" in line for line in err)


@pytest.mark.parametrize("damage", ["cut-mid-tensors", "zeroed-block"])
def test_doctor_names_the_download_into_the_damaged_copys_folder(
    tmp_path: Path, good_model: bytes, damage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / model_filename(MODEL)).write_bytes(damaged_copies(good_model)[damage])
    monkeypatch.setenv("VOXKEY_MODEL_DIR", str(models))
    result = Doctor(Config(asr=AsrSettings(model=MODEL)), paths=SystemPaths()).check_model()
    found = {"cut-mid-tensors": "is truncated", "zeroed-block": "checksum differs from the official"}[damage]
    assert not result.ok and found in result.detail, result.detail
    assert result.fix == f"voxkey models download {MODEL} --dir {models}"


def test_doctor_fix_for_a_model_given_as_a_path(tmp_path: Path, good_model: bytes) -> None:
    """``asr.model`` as a path: the fix names the official model, not the path (which download refuses)."""
    official = tmp_path / model_filename(MODEL)
    official.write_bytes(good_model[:1000])
    result = Doctor(Config(asr=AsrSettings(model=str(official))), paths=SystemPaths()).check_model()
    assert result.fix == f"voxkey models download {MODEL} --dir {tmp_path}"
    custom = tmp_path / "my-finetune.bin"
    custom.write_bytes(good_model[:1000])
    result = Doctor(Config(asr=AsrSettings(model=str(custom))), paths=SystemPaths()).check_model()
    assert not result.ok and result.fix.startswith(f"replace {custom} with an intact copy")


def test_doctor_accepts_the_intact_model(tmp_path: Path) -> None:
    result = Doctor(Config(asr=AsrSettings(model=MODEL)), paths=SystemPaths()).check_model()
    assert result.ok, result


NAMESPACE_SCRIPT = r"""
set -e
mount --make-rprivate /
mount -t tmpfs -o size={size} tmpfs /var/lib/voxkey
mkdir /var/lib/voxkey/models
cp "$MODEL_FILE" /var/lib/voxkey/models/
if [ -f "$MODEL_SUMS" ]; then cp "$MODEL_SUMS" /var/lib/voxkey/models/; fi
case "$STATE" in
  full) cat /dev/zero > /var/lib/voxkey/filler 2>/dev/null || true ;;
  read-only) mount -o remount,ro /var/lib/voxkey ;;
esac
mount -o remount,bind,ro /
if printf x > /var/lib/voxkey/probe 2>/dev/null; then echo "STATE WRITABLE"; exit 3; fi
if printf x > /probe-voxkey 2>/dev/null; then echo "ROOT WRITABLE"; exit 3; fi
exec "$PYTHON" -m voxkey run --config "$CONFIG" --audio-file "$AUDIO" --output terminal
"""


def can_unshare() -> bool:
    return os.geteuid() == 0 and shutil.which("unshare") is not None and Path("/var/lib").is_dir()


@pytest.mark.skipif(not can_unshare(), reason="needs root and unshare(1) for a private mount namespace")
@pytest.mark.parametrize("state", ["full", "read-only"])
def test_dictation_runs_with_a_read_only_root_and_a_full_or_read_only_state_dir(tmp_path: Path, state: str) -> None:
    model = find_model(MODEL)
    Path("/var/lib/voxkey").mkdir(exist_ok=True)  # the mount point (install.sh and systemd make it too)
    size_k = model.stat().st_size // 1024 + 64
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "firmware"),
        "VOXKEY_MODEL_DIR": "/var/lib/voxkey/models",  # as systemd/voxkey.service sets it
        "XDG_CACHE_HOME": "/var/lib/voxkey/cache",
        "MODEL_FILE": str(model),
        "MODEL_SUMS": str(model.parent / "SHA256SUMS"),  # install.sh copies the pins along (test models)
        "STATE": state,
        "PYTHON": sys.executable,
        "CONFIG": str(config_file(tmp_path, MODEL)),
        "AUDIO": str(SHORT),
    }
    script = NAMESPACE_SCRIPT.replace("{size}", f"{size_k}k")
    done = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout[-500:] + done.stderr[-2000:]
    assert TEXT in done.stdout.lower(), (done.stdout, done.stderr[-1000:])
