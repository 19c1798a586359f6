"""asr.remote against real speech servers on 127.0.0.1, and against servers that fail.

The servers are real: ``wyoming-faster-whisper`` (Home Assistant's) and
``faster-whisper-server`` (OpenAI-compatible), both with the CTranslate2 tiny.en
model from PyPI. Dictations go through the daemon (WAV file as microphone, the USB
link writing to a temp file in place of /dev/hidg0), so "typed" means the key
reports a host would get. Faults must end with the on-device text typed exactly
once and one warning line naming the server and the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.remote.servers import (
    KillingProxy,
    ServerProcess,
    StubServer,
    TlsFiles,
    free_port,
    make_tls,
    start_openai,
    start_wyoming,
    tiny_en_ct2,
)
from tests.speech_fixtures import manifest, word_error_rate
from voxkey import config as config_module
from voxkey.asr import AsrSettings, WhisperEngine
from voxkey.audio import read_wav, write_wav
from voxkey.config import Config
from voxkey.daemon import Daemon, RunOptions
from voxkey.dictation import DictationResult, transcribe_file
from voxkey.keymap import Layout, decode
from voxkey.remote.engine import RemoteEngine
from voxkey.remote.settings import RemoteSettings
from voxkey.text.cleanup import join_two
from voxkey.transports.host import Links
from voxkey.transports.usb import UsbHidLink
from voxkey.ui import LightState

pytestmark = pytest.mark.slow  # real speech servers and the on-device whisper, end to end


REPO = Path(__file__).resolve().parents[2]
SPEECH = REPO.parent / "shared" / "speech"
US = Layout.load("us")
MODEL = "tiny.en-q5_1"
DICTATIONS = ["3752-4944-0000", "2412-153948-0002", "LJ001-0004", "LJ001-0028", "jfk"]  # 3.3-11 s, 28 s in all
LONG = SPEECH / "LJ001-0001.wav"  # 9.7 s, one phrase
THREE = ["3752-4944-0000", "2412-153948-0002", "3752-4944-0002"]  # joined by 1 s pauses: three phrases


@pytest.fixture(scope="module")
def local() -> Iterator[WhisperEngine]:
    engine = WhisperEngine(AsrSettings(model=MODEL, threads=1))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def wyoming_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_wyoming(tiny_en_ct2(), tmp_path_factory.mktemp("wyoming"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def three_phrases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pause = np.zeros(16000, np.int16)
    parts = [part for name in THREE for part in (read_wav(SPEECH / f"{name}.wav")[0], pause)]
    path = tmp_path_factory.mktemp("three") / "three.wav"
    write_wav(path, np.concatenate(parts))
    return path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[TlsFiles, TlsFiles]:
    return make_tls(tmp_path_factory.mktemp("tls"))


def simulate_config(remote: str) -> Config:
    """examples/simulate.yaml (the PC simulation) with an ``asr.remote`` section, read as a user's file is."""
    text = (REPO / "examples" / "simulate.yaml").read_text()
    assert "\nasr:\n" in text
    text = text.replace("\nasr:\n", "\nasr:\n  threads: 1\n  remote:\n" + remote, 1)
    return config_module.loads(text)


def remote_yaml(settings: RemoteSettings) -> str:
    lines = [f"    enabled: {str(settings.enabled).lower()}", f"    protocol: {settings.protocol}"]
    lines += [f"    url: {settings.url}", f"    timeout_s: {settings.timeout_s}"]
    if settings.ca_file:
        lines.append(f"    ca_file: {settings.ca_file}")
    return "\n".join(lines) + "\n"


def dictate(config: Config, wav: Path, directory: Path, engine: RemoteEngine | None = None) -> tuple[str, Daemon]:
    """One press-speak-release of the daemon over ``wav``; what the host received."""
    device = directory / f"hidg0-{wav.stem}"
    device.write_bytes(b"")
    daemon = Daemon(
        config, RunOptions(audio_file=wav), link_factory=lambda c: Links([UsbHidLink(device)]), engine=engine
    )
    assert daemon.run() == 0
    data = device.read_bytes()
    return decode([data[i : i + 8] for i in range(0, len(data), 8)], US), daemon


def remote_engine(local: WhisperEngine, **changes: object) -> RemoteEngine:
    return RemoteEngine(local, RemoteSettings(enabled=True, retry_min_s=60, retry_max_s=60, **changes))  # type: ignore[arg-type]


def session_text(engine: WhisperEngine | RemoteEngine, wav: Path) -> DictationResult:
    return transcribe_file(engine, wav, Config().vad, Config().audio)


def warnings_from(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("voxkey")]


# --- the real servers -----------------------------------------------------------------------------------


def test_daemon_dictates_through_wyoming_faster_whisper(
    wyoming_server: ServerProcess, local: WhisperEngine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = simulate_config(remote_yaml(wyoming_server.settings))
    engine = RemoteEngine(local, config.asr.remote)
    utterances = {u.id: u for u in manifest()}
    typed_all, references = [], []
    for name in DICTATIONS:
        before = len(engine.outcomes)
        typed, _ = dictate(config, SPEECH / f"{name}.wav", tmp_path, engine)
        used = list(engine.outcomes)[before:]
        assert used and {o.source for o in used} == {"remote"}, used
        # what the server says for the same phrases, after voxkey's clean-up (server decoding is deterministic)
        assert typed == session_text(engine, SPEECH / f"{name}.wav").text
        typed_all.append(typed)
        references.append(utterances[name].text)
    wer = word_error_rate(references, typed_all)
    with capsys.disabled():
        print(f"\nremote (wyoming-faster-whisper, tiny.en CT2) WER over {len(DICTATIONS)} dictations: {wer:.1%}")
    assert wer < 0.10


def test_daemon_builds_the_remote_engine_from_the_config(
    wyoming_server: ServerProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = simulate_config(remote_yaml(wyoming_server.settings))
    typed, _ = dictate(config, SPEECH / "3752-4944-0000.wav", tmp_path)
    assert f"ready: wyoming server 127.0.0.1:{wyoming_server.settings.port} (on-device fallback" in caplog.text
    assert not warnings_from(caplog)  # the server answered every phrase
    assert typed.lower().startswith("captain")


def test_openai_server_over_https_with_the_ca_file(
    tls: tuple[TlsFiles, TlsFiles], local: WhisperEngine, tmp_path: Path
) -> None:
    good, _ = tls
    server = start_openai(tiny_en_ct2(), tmp_path, tls=good)
    try:
        engine = remote_engine(local, protocol="openai", url=server.url, ca_file=good.ca, timeout_s=60)
        result = session_text(engine, LONG)
        assert {o.source for o in engine.outcomes} == {"remote"}
        reference = next(u.text for u in manifest() if u.id == LONG.stem)
        assert word_error_rate([reference], [result.text]) < 0.10
    finally:
        server.stop()


# --- faults: each ends with the on-device text, typed once, and one warning -----------------------------


def test_tls_certificate_for_another_name_falls_back(
    tls: tuple[TlsFiles, TlsFiles], local: WhisperEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, wrong = tls
    server = start_openai(tiny_en_ct2(), tmp_path, tls=wrong, warm=False)
    try:
        engine = remote_engine(local, protocol="openai", url=server.url, ca_file=wrong.ca)
        caplog.set_level(logging.INFO)
        config = simulate_config("    enabled: false\n")
        typed, _ = dictate(config, SPEECH / "3752-4944-0000.wav", tmp_path, engine)
        assert typed == session_text(local, SPEECH / "3752-4944-0000.wav").text
        assert {o.source for o in engine.outcomes} == {"local"}
        (warning,) = warnings_from(caplog)
        assert "certificate not trusted" in warning and "127.0.0.1" in warning
    finally:
        server.stop()


def test_server_killed_mid_dictation_types_the_rest_from_the_device(
    local: WhisperEngine,
    wyoming_server: ServerProcess,
    three_phrases: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    healthy = remote_engine(local, url=wyoming_server.url, timeout_s=60)
    remote_phrases = [p.text for p in session_text(healthy, three_phrases).phrases]
    local_phrases = [p.text for p in session_text(local, three_phrases).phrases]
    assert len(local_phrases) == len(remote_phrases) == 3

    victim = start_wyoming(tiny_en_ct2(), tmp_path)
    proxy = KillingProxy(victim.settings.port, victim.kill, kill_at=2)
    try:
        engine = remote_engine(local, url=f"tcp://127.0.0.1:{proxy.port}", timeout_s=30)
        caplog.set_level(logging.INFO)
        typed, _ = dictate(simulate_config("    enabled: false\n"), three_phrases, tmp_path, engine)
    finally:
        proxy.close()
        victim.stop()
    assert proxy.killed.is_set()
    expected = ""
    for text in [remote_phrases[0], *local_phrases[1:]]:
        expected = join_two(expected, text)
    assert typed == expected
    (warning,) = warnings_from(caplog)
    assert "127.0.0.1" in warning and ("without a Wyoming transcript" in warning or "dropped" in warning), warning


def test_connection_refused_at_start_is_found_once_and_never_waited_for(
    local: WhisperEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = remote_engine(local, url=f"tcp://127.0.0.1:{free_port()}", timeout_s=5)
    caplog.set_level(logging.INFO)
    engine._first_probe()  # what warm_up runs in the background when the daemon starts
    assert not engine.health.up
    idle = Daemon(
        simulate_config("    enabled: false\n"), RunOptions(), link_factory=lambda c: Links([]), engine=engine
    )
    assert idle._display_state() is LightState.ON_DEVICE  # the LED says the Pi transcribes meanwhile
    typed, _ = dictate(simulate_config("    enabled: false\n"), LONG, tmp_path, engine)
    assert typed == session_text(local, LONG).text
    assert {o.source for o in engine.outcomes} == {"local"}
    assert all(o.error == "" for o in engine.outcomes)  # known down: not even tried
    (warning,) = warnings_from(caplog)
    assert "connection refused" in warning


@pytest.mark.parametrize("protocol", ["wyoming", "openai"])
@pytest.mark.parametrize("mode", ["hang", "garbage", "empty", "huge"])
def test_misbehaving_server_falls_back_to_the_device(
    protocol: str, mode: str, local: WhisperEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stub = StubServer(protocol, mode)
    try:
        engine = remote_engine(local, protocol=protocol, url=stub.url, timeout_s=1.0)
        caplog.set_level(logging.INFO)
        typed, _ = dictate(simulate_config("    enabled: false\n"), LONG, tmp_path, engine)
    finally:
        stub.close()
    assert stub.phrases >= 1
    assert typed == session_text(local, LONG).text  # the device's text, each phrase once
    outcomes = list(engine.outcomes)
    assert {o.source for o in outcomes} == {"local"}
    assert outcomes[0].error
    (warning,) = warnings_from(caplog)
    assert "127.0.0.1" in warning
    expected = {
        "hang": "no transcript within 1.0 s",
        "garbage": "without a Wyoming transcript" if protocol == "wyoming" else "without a JSON text field",
        "empty": "no text",
        "huge": "words",
    }[mode]
    assert expected in warning, warning
    if mode == "hang":
        assert outcomes[0].wait_s >= 1.0  # the deadline was waited out, then the device transcribed


def test_bearer_token_is_sent_and_never_logged(
    local: WhisperEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = "s3cret-token-value"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    stub = StubServer("openai", "ok", text="Hello from the server.")
    try:
        engine = remote_engine(local, protocol="openai", url=stub.url, token_file=token_file, timeout_s=5)
        caplog.set_level(logging.DEBUG)
        result = session_text(engine, SPEECH / "3752-4944-0000.wav")
    finally:
        stub.close()
    assert result.text == "Hello from the server."
    assert f"authorization: bearer {token}".encode() in [h.lower() for h in stub.headers]
    assert token not in caplog.text
    assert token not in engine.name and token not in repr(engine.remote)
