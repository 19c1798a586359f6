from __future__ import annotations

import hashlib
import http.server
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.speech_fixtures import model_dir
from voxkey import models
from voxkey.asr import AsrSettings, WhisperEngine
from voxkey.errors import ModelError
from voxkey.models import (
    OFFICIAL_MODELS,
    download_model,
    find_model,
    model_filename,
    read_header,
    verify_model,
)

TINY = "ggml-tiny.en-q5_1.bin"
MODEL_DIR = model_dir()  # before any test points VOXKEY_MODEL_DIR elsewhere


@pytest.fixture
def tiny_path() -> Path:
    path = MODEL_DIR / TINY
    assert path.is_file(), f"test model {path} missing: set VOXKEY_MODEL_DIR to the shared models folder"
    return path


@pytest.fixture
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Model search confined to temp folders (no real cache or /var/lib)."""
    override = tmp_path / "override"
    override.mkdir()
    monkeypatch.setenv("VOXKEY_MODEL_DIR", str(override))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(models, "SYSTEM_MODEL_DIR", tmp_path / "system")
    return tmp_path


def test_official_table_is_well_formed() -> None:
    assert "tiny.en-q5_1" in OFFICIAL_MODELS and "base.en-q5_1" in OFFICIAL_MODELS
    digests = [info.sha256 for info in OFFICIAL_MODELS.values()]
    assert all(re.fullmatch(r"[0-9a-f]{64}", d) for d in digests)
    assert len(set(digests)) == len(digests)
    info = OFFICIAL_MODELS["tiny.en-q5_1"]
    assert info.filename == "ggml-tiny.en-q5_1.bin"
    assert info.url.endswith("/ggerganov/whisper.cpp/resolve/main/ggml-tiny.en-q5_1.bin")
    assert info.english_only and not OFFICIAL_MODELS["base-q5_1"].english_only


def test_names_map_to_whisper_cpp_file_names() -> None:
    assert model_filename("base.en-q8_0") == "ggml-base.en-q8_0.bin"


def test_lookup_order_override_then_cache_then_system(isolated_dirs: Path, tiny_path: Path) -> None:
    system = isolated_dirs / "system"
    cache = isolated_dirs / "cache" / "voxkey" / "models"
    for folder in (system, cache):
        folder.mkdir(parents=True)
    shutil.copy(tiny_path, system / TINY)
    assert find_model("tiny.en-q5_1") == system / TINY
    shutil.copy(tiny_path, cache / TINY)
    assert find_model("tiny.en-q5_1") == cache / TINY
    shutil.copy(tiny_path, isolated_dirs / "override" / TINY)
    assert find_model("tiny.en-q5_1") == isolated_dirs / "override" / TINY


def test_missing_model_error_names_the_fix(isolated_dirs: Path) -> None:
    with pytest.raises(ModelError, match=r"voxkey models download tiny\.en-q5_1"):
        find_model("tiny.en-q5_1")
    with pytest.raises(ModelError, match="known names"):
        find_model("enormous-v9")
    with pytest.raises(ModelError, match="does not exist"):
        find_model(str(isolated_dirs / "nope.bin"))


def test_model_given_as_path(tiny_path: Path) -> None:
    assert find_model(str(tiny_path)) == tiny_path


def test_headers_of_the_test_models() -> None:
    tiny = read_header(MODEL_DIR / TINY)
    assert (tiny.n_vocab, tiny.n_audio_state, tiny.n_audio_layer) == (51864, 384, 4)
    assert not tiny.multilingual and tiny.n_tensors == 167
    base = read_header(MODEL_DIR / "ggml-base-q5_1.bin")
    assert base.multilingual and base.n_audio_state == 512


@pytest.mark.parametrize("keep", [0, 3, 100, 1_000_000, 20_000_000])
def test_truncated_model_is_reported_not_loaded(tmp_path: Path, tiny_path: Path, keep: int) -> None:
    broken = tmp_path / TINY
    broken.write_bytes(tiny_path.read_bytes()[:keep])
    with pytest.raises(ModelError, match=r"truncated|damaged"):
        read_header(broken)
    assert verify_model(broken).verdict == "corrupt"


def test_garbage_file_is_not_a_model(tmp_path: Path) -> None:
    junk = tmp_path / "ggml-junk.bin"
    junk.write_bytes(b"<html>404 not found</html>" * 100)
    with pytest.raises(ModelError, match=r"not a whisper\.cpp ggml model"):
        read_header(junk)


def test_engine_refuses_a_damaged_model_instead_of_crashing(tmp_path: Path, tiny_path: Path) -> None:
    broken = tmp_path / TINY
    broken.write_bytes(tiny_path.read_bytes()[:20_000_000])
    with pytest.raises(ModelError, match="download it again"):
        WhisperEngine(AsrSettings(model=str(broken)))


def test_verify_uses_local_pins_and_the_official_table(tmp_path: Path, tiny_path: Path) -> None:
    # The shared test models are not the official files; their folder pins them in SHA256SUMS.
    shared = verify_model(tiny_path)
    assert shared.verdict == "pinned", shared.detail
    # The same bytes under an official name and without a pin: the official checksum must reject them.
    copy = tmp_path / TINY
    shutil.copy(tiny_path, copy)
    status = verify_model(copy)
    assert status.verdict == "corrupt" and "voxkey models download tiny.en-q5_1" in status.detail
    # A name with no official entry and no pin is accepted on structure alone.
    other = tmp_path / "ggml-custom-finetune.bin"
    shutil.copy(tiny_path, other)
    assert verify_model(other).verdict == "unpinned"
    # A flipped byte inside a pinned file is caught.
    pinned_dir = tmp_path / "pinned"
    pinned_dir.mkdir()
    damaged = pinned_dir / TINY
    data = bytearray(tiny_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    (pinned_dir / "SHA256SUMS").write_text(f"{hashlib.sha256(tiny_path.read_bytes()).hexdigest()}  {TINY}\n")
    assert verify_model(damaged).verdict == "corrupt"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def model_server(tiny_path: Path) -> Iterator[str]:
    """A local HTTP server standing in for the model repository (tests never reach the internet)."""
    folder = tiny_path.parent

    def handler(*args: object, **kwargs: object) -> _QuietHandler:
        return _QuietHandler(*args, directory=str(folder), **kwargs)  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_verifies_and_reports_progress(
    tmp_path: Path, tiny_path: Path, model_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = hashlib.sha256(tiny_path.read_bytes()).hexdigest()
    # Serve the test model under its real name, with the table expecting exactly those bytes.
    monkeypatch.setitem(OFFICIAL_MODELS, "tiny.en-q5_1", models.ModelInfo("tiny.en-q5_1", digest, 32.2))
    calls: list[tuple[int, int | None]] = []
    path = download_model(
        "tiny.en-q5_1", tmp_path / "dl", progress=lambda d, t: calls.append((d, t)), base_url=model_server
    )
    assert path == tmp_path / "dl" / TINY
    assert path.read_bytes() == tiny_path.read_bytes()
    assert calls[-1] == (tiny_path.stat().st_size, tiny_path.stat().st_size)
    assert list((tmp_path / "dl").iterdir()) == [path]


def test_download_with_wrong_checksum_leaves_nothing(tmp_path: Path, model_server: str) -> None:
    # The local server has the test model, not the official file: the official checksum must reject it.
    with pytest.raises(ModelError, match="expected"):
        download_model("tiny.en-q5_1", tmp_path, base_url=model_server)
    assert list(tmp_path.iterdir()) == []


def test_download_errors_are_one_clear_line(tmp_path: Path, model_server: str) -> None:
    with pytest.raises(ModelError, match="HTTP 404"):
        download_model("small.en-q8_0", tmp_path, base_url=model_server)
    with pytest.raises(ModelError, match="unknown model"):
        download_model("huge", tmp_path, base_url=model_server)
    with pytest.raises(ModelError, match="cannot download"):
        download_model("tiny.en-q5_1", tmp_path, base_url="http://127.0.0.1:9")
    assert list(tmp_path.iterdir()) == []


def test_progress_bar_draws_a_line() -> None:
    import io

    out = io.StringIO()
    bar = models.ProgressBar("model", stream=out, width=10)
    bar(50, 100)
    bar(100, 100)
    assert "[##########]" in out.getvalue() and out.getvalue().endswith("\n")
