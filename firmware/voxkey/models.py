"""Whisper model files: names, where they live, download and integrity checks.

A model is named the way whisper.cpp names it (``tiny.en-q5_1`` is the file
``ggml-tiny.en-q5_1.bin``) or given as a path. Files are looked up in
``$VOXKEY_MODEL_DIR``, ``~/.cache/voxkey/models`` and ``/var/lib/voxkey/models``
in that order, so a developer's override wins over the user cache, which wins
over the image's system copy.

Why a structural check as well as checksums: whisper.cpp does not fail cleanly
on a truncated or garbled file (the context it returns crashes on first use),
so every file is walked tensor by tensor before it is handed to whisper.cpp.
The sha256 table below holds the OFFICIAL files of the whisper.cpp model
repository (the Git LFS object ids of ``ggerganov/whisper.cpp`` on Hugging
Face); a download must match it byte for byte. Files that are not official
(self-converted, fine-tuned) are accepted when structurally sound, and can be
pinned with a ``SHA256SUMS`` file beside them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from voxkey.errors import ModelError

DOWNLOAD_BASE_URL = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main"
SYSTEM_MODEL_DIR = Path("/var/lib/voxkey/models")
DEFAULT_MODEL = "tiny.en-q5_1"

GGML_MAGIC = 0x67676D6C
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelInfo:
    """One official whisper.cpp model file."""

    name: str
    sha256: str
    size_mb: float  # as published, rounded; shown to users before a download

    @property
    def filename(self) -> str:
        return model_filename(self.name)

    @property
    def url(self) -> str:
        return f"{DOWNLOAD_BASE_URL}/{self.filename}"

    @property
    def english_only(self) -> bool:
        return ".en" in self.name


def _info(name: str, sha256: str, size_mb: float) -> tuple[str, ModelInfo]:
    return name, ModelInfo(name, sha256, size_mb)


# sha256 of the official files (Git LFS oids in ggerganov/whisper.cpp on Hugging Face).
# Larger models (medium, large) are left out on purpose: they do not fit a Pi's time budget.
OFFICIAL_MODELS: dict[str, ModelInfo] = dict(
    [
        _info("tiny", "be07e048e1e599ad46341c8d2a135645097a538221678b7acdd1b1919c6e1b21", 77.7),
        _info("tiny-q5_1", "818710568da3ca15689e31a743197b520007872ff9576237bda97bd1b469c3d7", 32.2),
        _info("tiny-q8_0", "c2085835d3f50733e2ff6e4b41ae8a2b8d8110461e18821b09a15c40c42d1cca", 43.5),
        _info("tiny.en", "921e4cf8686fdd993dcd081a5da5b6c365bfde1162e72b08d75ac75289920b1f", 77.7),
        _info("tiny.en-q5_1", "c77c5766f1cef09b6b7d47f21b546cbddd4157886b3b5d6d4f709e91e66c7c2b", 32.2),
        _info("tiny.en-q8_0", "5bc2b3860aa151a4c6e7bb095e1fcce7cf12c7b020ca08dcec0c6d018bb7dd94", 43.6),
        _info("base", "60ed5bc3dd14eea856493d334349b405782ddcaf0028d4b5df4088345fba2efe", 148.0),
        _info("base-q5_1", "422f1ae452ade6f30a004d7e5c6a43195e4433bc370bf23fac9cc591f01a8898", 59.7),
        _info("base-q8_0", "c577b9a86e7e048a0b7eada054f4dd79a56bbfa911fbdacf900ac5b567cbb7d9", 81.8),
        _info("base.en", "a03779c86df3323075f5e796cb2ce5029f00ec8869eee3fdfb897afe36c6d002", 148.0),
        _info("base.en-q5_1", "4baf70dd0d7c4247ba2b81fafd9c01005ac77c2f9ef064e00dcf195d0e2fdd2f", 59.7),
        _info("small", "1be3a9b2063867b937e64e2ec7483364a79917e157fa98c5d94b5c1fffea987b", 488.0),
        _info("small-q5_1", "ae85e4a935d7a567bd102fe55afc16bb595bdb618e11b2fc7591bc08120411bb", 190.0),
        _info("small-q8_0", "49c8fb02b65e6049d5fa6c04f81f53b867b5ec9540406812c643f177317f779f", 264.0),
        _info("small.en", "c6138d6d58ecc8322097e0f987c32f1be8bb0a18532a3f88f734d1bbf9c41e5d", 488.0),
        _info("small.en-q5_1", "bfdff4894dcb76bbf647d56263ea2a96645423f1669176f4844a1bf8e478ad30", 190.0),
        _info("small.en-q8_0", "67a179f608ea6114bd3fdb9060e762b588a3fb3bd00c4387971be4d177958067", 264.0),
    ]
)

# ggml tensor types in whisper.cpp's legacy file format: (elements per block, bytes per block).
_GGML_TYPE_BLOCKS: dict[int, tuple[int, int]] = {
    0: (1, 4),  # f32
    1: (1, 2),  # f16
    2: (32, 18),  # q4_0
    3: (32, 20),  # q4_1
    6: (32, 22),  # q5_0
    7: (32, 24),  # q5_1
    8: (32, 34),  # q8_0
}


@dataclass(frozen=True)
class ModelHeader:
    """What the file says about itself; enough to tell models apart and spot damage."""

    n_vocab: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_layer: int
    n_text_layer: int
    n_mels: int
    ftype: int
    n_tensors: int

    @property
    def multilingual(self) -> bool:
        # whisper.cpp's own rule: English-only vocabularies have 51864 tokens.
        return self.n_vocab >= 51865


@dataclass(frozen=True)
class ModelStatus:
    """Result of verifying one model file."""

    path: Path
    name: str
    sha256: str
    verdict: str  # "official", "pinned", "unpinned" or "corrupt"
    detail: str

    @property
    def ok(self) -> bool:
        return self.verdict != "corrupt"


def model_filename(name: str) -> str:
    """``tiny.en-q5_1`` -> ``ggml-tiny.en-q5_1.bin``, as whisper.cpp's download script names files."""
    return f"ggml-{name}.bin"


def model_name_from_path(path: Path) -> str:
    stem = path.name
    if stem.startswith("ggml-") and stem.endswith(".bin"):
        return stem[len("ggml-") : -len(".bin")]
    return stem


def model_search_dirs() -> list[Path]:
    """Directories searched for models, most specific first."""
    dirs: list[Path] = []
    override = os.environ.get("VOXKEY_MODEL_DIR")
    if override:
        dirs.extend(Path(p).expanduser() for p in override.split(os.pathsep) if p)
    dirs.append(user_model_dir())
    dirs.append(SYSTEM_MODEL_DIR)
    return dirs


def user_model_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "voxkey" / "models"


def default_download_dir() -> Path:
    """Where ``models download`` writes: the override if set, else the user cache."""
    override = os.environ.get("VOXKEY_MODEL_DIR")
    if override:
        return Path(override.split(os.pathsep)[0]).expanduser()
    return user_model_dir()


def _looks_like_path(name_or_path: str) -> bool:
    return os.sep in name_or_path or name_or_path.endswith(".bin") or name_or_path.startswith(".")


def find_model(name_or_path: str) -> Path:
    """The model file for a name or path; ModelError naming the fix when there is none."""
    if not name_or_path:
        raise ModelError("no whisper model configured; set asr.model, e.g. to tiny.en-q5_1")
    if _looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist; check the path or give a model name like tiny.en-q5_1")
        return path
    filename = model_filename(name_or_path)
    for directory in model_search_dirs():
        candidate = directory / filename
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(d) for d in model_search_dirs())
    if name_or_path in OFFICIAL_MODELS:
        fix = f"run `voxkey models download {name_or_path}`"
    else:
        fix = f"known names: {', '.join(OFFICIAL_MODELS)}; or put {filename} in one of those folders"
    raise ModelError(f"whisper model {name_or_path!r} not found in {searched}; {fix}")


def installed_models() -> list[Path]:
    """Every ggml model file in the search folders (first one wins for a given file name)."""
    seen: dict[str, Path] = {}
    for directory in model_search_dirs():
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("ggml-*.bin")):
            seen.setdefault(path.name, path)
    return list(seen.values())


def _read_exact(stream: BinaryIO, size: int, path: Path) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise ModelError(f"model file {path} is truncated; download it again with `voxkey models download NAME`")
    return data


def read_header(path: Path) -> ModelHeader:
    """Walk the whole ggml file (header, mel filters, vocabulary, every tensor) without loading weights.

    Seeking past each tensor's data proves the file is complete and well formed,
    which is what keeps a damaged file from crashing whisper.cpp later.
    """
    corrupt = f"model file {path} is damaged or not a whisper.cpp ggml model; download it again"
    try:
        size = path.stat().st_size
        with path.open("rb") as stream:
            (magic,) = struct.unpack("<I", _read_exact(stream, 4, path))
            if magic != GGML_MAGIC:
                raise ModelError(corrupt)
            hparams = struct.unpack("<11i", _read_exact(stream, 44, path))
            n_vocab, n_audio_ctx, n_audio_state, _, n_audio_layer, _, _, _, n_text_layer, n_mels, ftype = hparams
            n_mel, n_fft = struct.unpack("<2i", _read_exact(stream, 8, path))
            if not (0 < n_mel <= 512 and 0 < n_fft <= 4096) or n_vocab <= 0:
                raise ModelError(corrupt)
            stream.seek(n_mel * n_fft * 4, os.SEEK_CUR)
            (vocab_entries,) = struct.unpack("<i", _read_exact(stream, 4, path))
            if not 0 < vocab_entries <= 1_000_000:
                raise ModelError(corrupt)
            for _ in range(vocab_entries):
                (length,) = struct.unpack("<I", _read_exact(stream, 4, path))
                stream.seek(length, os.SEEK_CUR)
            n_tensors = 0
            while stream.tell() < size:
                n_dims, name_len, ttype = struct.unpack("<3i", _read_exact(stream, 12, path))
                if not 1 <= n_dims <= 4 or not 0 < name_len < 256 or ttype not in _GGML_TYPE_BLOCKS:
                    raise ModelError(corrupt)
                dims = struct.unpack(f"<{n_dims}i", _read_exact(stream, 4 * n_dims, path))
                _read_exact(stream, name_len, path)
                elements = 1
                for dim in dims:
                    elements *= dim
                per_block, block_bytes = _GGML_TYPE_BLOCKS[ttype]
                if elements <= 0 or elements % per_block:
                    raise ModelError(corrupt)
                stream.seek(elements // per_block * block_bytes, os.SEEK_CUR)
                n_tensors += 1
            if stream.tell() != size or n_tensors == 0:
                raise ModelError(
                    f"model file {path} is truncated; download it again with `voxkey models download NAME`"
                )
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}") from exc
    except struct.error as exc:
        raise ModelError(corrupt) from exc
    return ModelHeader(n_vocab, n_audio_ctx, n_audio_state, n_audio_layer, n_text_layer, n_mels, ftype, n_tensors)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _pinned_checksums(directory: Path) -> dict[str, str]:
    """``SHA256SUMS`` beside the models (``sha256sum`` output format), if present."""
    sums = directory / "SHA256SUMS"
    pinned: dict[str, str] = {}
    if not sums.is_file():
        return pinned
    for line in sums.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 2 and len(parts[0]) == 64:
            pinned[parts[1].lstrip("*")] = parts[0].lower()
    return pinned


def verify_model(path: Path) -> ModelStatus:
    """Check one file: structure first, then its checksum against the official table or a local pin."""
    name = model_name_from_path(path)
    try:
        header = read_header(path)
    except ModelError as exc:
        return ModelStatus(path, name, "", "corrupt", str(exc))
    digest = sha256_of(path)
    official = OFFICIAL_MODELS.get(name)
    pinned = _pinned_checksums(path.parent).get(path.name)
    if official and digest == official.sha256:
        return ModelStatus(path, name, digest, "official", "matches the official whisper.cpp checksum")
    if pinned is not None:
        if digest == pinned:
            return ModelStatus(path, name, digest, "pinned", f"matches {path.parent / 'SHA256SUMS'}")
        return ModelStatus(path, name, digest, "corrupt", f"checksum differs from {path.parent / 'SHA256SUMS'}")
    if official:
        return ModelStatus(
            path,
            name,
            digest,
            "corrupt",
            f"checksum differs from the official {name}; run `voxkey models download {name}`",
        )
    detail = f"structurally sound ({header.n_tensors} tensors) but no checksum to compare with"
    return ModelStatus(path, name, digest, "unpinned", detail)


def check_model(path: Path) -> ModelHeader:
    """Raise ModelError unless the file is safe to hand to whisper.cpp and, where a checksum is known, intact.

    The structure walk misses damage inside the data (a zeroed SD card block in the mel filters or the
    weights: whisper.cpp then loads it and types nonsense), so an official or pinned file's sha256 is
    checked too: 0.08 s for tiny.en-q5_1 on the dev PC, and it leaves the file in the page cache that
    whisper.cpp reads next. Files without a known checksum get the structure walk only.
    """
    status = verify_model(path)
    if status.verdict != "corrupt":
        return read_header(path)
    if status.sha256 == "":  # the structure walk failed: its message already says what to do
        raise ModelError(status.detail)
    name = status.name
    fix = f"voxkey models download {name} --dir {path.parent}" if name in OFFICIAL_MODELS else "replace it"
    raise ModelError(f"model file {path} is damaged ({status.detail.split(';')[0]}); download it again: {fix}")


ProgressCallback = Callable[[int, int | None], None]


class ProgressBar:
    """A one-line terminal progress bar for downloads (stderr, redrawn at most 10 times a second)."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._last_draw = 0.0
        self._started = time.monotonic()

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        if not finished and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        rate = done / max(now - self._started, 1e-6) / 1e6
        if total:
            filled = int(self.width * done / total)
            bar = "#" * filled + "-" * (self.width - filled)
            line = f"\r{self.label} [{bar}] {done / 1e6:6.1f}/{total / 1e6:.1f} MB {rate:5.1f} MB/s"
        else:
            line = f"\r{self.label} {done / 1e6:6.1f} MB {rate:5.1f} MB/s"
        self.stream.write(line)
        if finished:
            self.stream.write("\n")
        self.stream.flush()


def _stream_to(response: BinaryIO, out: BinaryIO, total: int | None, progress: ProgressCallback | None) -> str:
    digest = hashlib.sha256()
    done = 0
    for chunk in iter(lambda: response.read(_HASH_CHUNK // 4), b""):
        out.write(chunk)
        digest.update(chunk)
        done += len(chunk)
        if progress:
            progress(done, total)
    if progress and (total is None or done < total):
        progress(done, done)
    return digest.hexdigest()


def download_model(
    name: str,
    directory: Path | None = None,
    progress: ProgressCallback | None = None,
    base_url: str = DOWNLOAD_BASE_URL,
    timeout_s: float = 30.0,
) -> Path:
    """Download an official model, verify its sha256 while it streams, then move it into place.

    The file only appears under its real name once verified, so a broken
    download can never be picked up by the daemon.
    """
    info = OFFICIAL_MODELS.get(name)
    if info is None:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(OFFICIAL_MODELS)}")
    target_dir = directory if directory is not None else default_download_dir()
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create model folder {target_dir}: {exc.strerror or exc}") from exc
    # Here, not at the top: urllib.request pulls in http.client and email (13 ms on a PC, an estimated
    # 40-50 ms on a Pi Zero 2 W), and every config read imports this module for DEFAULT_MODEL.
    import urllib.error
    import urllib.request

    target = target_dir / info.filename
    url = f"{base_url.rstrip('/')}/{info.filename}"
    request = urllib.request.Request(url, headers={"User-Agent": "voxkey-model-download"})
    fd, tmp_name = tempfile.mkstemp(prefix=f".{info.filename}.", suffix=".part", dir=target_dir)
    tmp_path = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout_s) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            digest = _stream_to(response, out, total, progress)
        if digest != info.sha256:
            raise ModelError(
                f"downloaded {info.filename} has sha256 {digest[:12]}…, expected {info.sha256[:12]}…; "
                "the download was damaged or the server changed the file: try again"
            )
        read_header(tmp_path)
        shutil.move(str(tmp_path), target)
    except urllib.error.HTTPError as exc:
        raise ModelError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise ModelError(f"cannot download {url}: {exc.reason}; check the network connection") from exc
    except (TimeoutError, ConnectionError) as exc:
        raise ModelError(f"cannot download {url}: {exc}; check the network connection and try again") from exc
    except OSError as exc:
        raise ModelError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        tmp_path.unlink(missing_ok=True)
    return target


def iter_statuses(paths: list[Path]) -> Iterator[ModelStatus]:
    for path in paths:
        yield verify_model(path)
