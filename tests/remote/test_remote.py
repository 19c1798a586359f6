"""asr.remote without servers: settings, the fallback rules, the probe schedule, privacy checks, systemd."""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from voxkey import config as config_module
from voxkey.asr import AsrSettings, Transcript
from voxkey.audio import SAMPLE_RATE
from voxkey.doctor import Doctor
from voxkey.errors import ConfigError, RemoteAsrError
from voxkey.remote.engine import RemoteEngine, check_text
from voxkey.remote.health import Backoff, ServerHealth
from voxkey.remote.network import is_local, privacy_findings, systemd_dropin
from voxkey.remote.settings import RemoteSettings

REPO = Path(__file__).resolve().parents[2]
PHRASE = np.zeros(2 * SAMPLE_RATE, np.int16)  # 2 s


# --- settings ---------------------------------------------------------------------------------------


def test_remote_is_off_by_default_and_listed_with_the_defaults() -> None:
    assert config_module.Config().asr.remote.enabled is False
    assert "  remote:\n    enabled: false\n" in config_module.dump_defaults()


def test_remote_section_is_read_from_the_config_file(tmp_path: Path) -> None:
    loaded = config_module.loads(
        "asr:\n  remote:\n    enabled: true\n    protocol: openai\n    url: https://192.168.1.20:8000\n"
        f"    timeout_s: 1.5\n    token_file: {tmp_path / 'token'}\n    fallback: parallel\n"
    )
    remote = loaded.asr.remote
    assert (remote.protocol, remote.host, remote.port, remote.uses_tls) == ("openai", "192.168.1.20", 8000, True)
    assert (remote.timeout_s, remote.fallback, remote.token_file) == (1.5, "parallel", tmp_path / "token")


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("    enabled: true\n", "asr.remote.url is needed"),
        ("    enabled: true\n    url: http://192.168.1.20:10300\n", "tcp://HOST:PORT for protocol wyoming"),
        ("    enabled: true\n    protocol: openai\n    url: tcp://h:1\n", "https://HOST:PORT"),
        ("    timeout_s: 0\n", "timeout_s must be greater than 0"),
        ("    enabled: true\n    url: tcp://h:1\n    token_file: /t\n", "apply to protocol openai only"),
    ],
)
def test_wrong_remote_settings_name_the_line(yaml: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_module.loads("asr:\n  remote:\n" + yaml, "c.yaml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("c.yaml:")


# --- the probe schedule ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_to_the_cap_and_resets() -> None:
    backoff = Backoff(5, 30)
    assert [backoff.next_delay() for _ in range(5)] == [5, 10, 20, 30, 30]
    backoff.reset()
    assert backoff.next_delay() == 5


def test_a_dead_server_is_logged_once_and_probed_with_backoff(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    answers: list[Exception | None] = [RemoteAsrError("still down"), None]
    probes = []

    def probe() -> None:
        probes.append(clock.now)
        answer = answers.pop(0)
        if answer is not None:
            raise answer

    health = ServerHealth(probe, "server X", Backoff(5, 300), clock, background=False)
    caplog.set_level(logging.DEBUG, "voxkey")
    health.failed(RemoteAsrError("server X: connection refused"))
    health.failed(RemoteAsrError("server X: connection refused"))  # a second phrase meeting it: no new line
    assert not health.up
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "connection refused; using the on-device model" in caplog.records[0].getMessage()
    assert health.poll() is False and probes == []  # not due yet
    clock.now += 5
    assert health.poll() is False and probes == [105.0]
    assert health.seconds_to_probe() == 10  # doubled
    clock.now += 9.9
    assert health.poll() is False and len(probes) == 1
    clock.now += 0.1
    assert health.poll() is True and health.up
    assert "answers again" in caplog.records[-1].getMessage()
    health.failed(RemoteAsrError("down again"))
    assert health.seconds_to_probe() == 5  # backoff starts over after a success
    assert health.failures == 2


def test_background_prober_brings_the_server_back() -> None:
    came_back = threading.Event()

    def probe() -> None:
        came_back.set()

    health = ServerHealth(probe, "server X", Backoff(0.01, 0.01))
    try:
        health.failed(RemoteAsrError("gone"))
        assert came_back.wait(10)
        for _ in range(1000):
            if health.up:
                break
            threading.Event().wait(0.01)
        assert health.up
    finally:
        health.close()


# --- the fallback rules --------------------------------------------------------------------------------


class FakeClient:
    where = "fake server"

    def __init__(self, answer: str | Exception = "remote words", block: threading.Event | None = None) -> None:
        self.answer = answer
        self.block = block
        self.calls = 0

    def transcribe(self, pcm: bytes, language: str, prompt: str, timeout_s: float) -> str:
        self.calls += 1
        assert len(pcm) == 2 * PHRASE.size and language == "en"
        if self.block is not None:
            self.block.wait(10)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def probe(self, timeout_s: float) -> None:
        raise RemoteAsrError("fake server: down")


class FakeLocal:
    settings = AsrSettings()
    name = "fake-local"

    def __init__(self) -> None:
        self.calls = 0

    def transcribe(self, samples: object, prompt: str | None = None, **options: object) -> Transcript:
        self.calls += 1
        return Transcript("local words", 2.0, 0.1, ["local words"])

    def warm_up(self) -> None:
        return None

    def close(self) -> None:
        return None


def engine_with(client: FakeClient, **changes: object) -> tuple[RemoteEngine, FakeLocal]:
    local = FakeLocal()
    settings = RemoteSettings(enabled=True, url="tcp://127.0.0.1:1", timeout_s=0.3, **changes)  # type: ignore[arg-type]
    return RemoteEngine(local, settings, client=client, background=False), local  # type: ignore[arg-type]


def test_server_text_is_used_and_the_device_stays_idle() -> None:
    engine, local = engine_with(FakeClient(" remote words "))
    assert engine.transcribe(PHRASE).text == "remote words"
    assert local.calls == 0
    assert [o.source for o in engine.outcomes] == ["remote"]


def test_parallel_fallback_runs_the_device_on_every_phrase() -> None:
    engine, local = engine_with(FakeClient("remote words"), fallback="parallel")
    assert engine.transcribe(PHRASE).text == "remote words"
    engine._local_pool.shutdown(wait=True)
    assert local.calls == 1


def test_a_failing_server_is_not_asked_again_until_a_probe_succeeds() -> None:
    client = FakeClient(RemoteAsrError("fake server: connection refused"))
    engine, local = engine_with(client)
    assert engine.transcribe(PHRASE).text == "local words"
    assert engine.transcribe(PHRASE).text == "local words"
    assert (client.calls, local.calls) == (1, 2)
    first, second = engine.outcomes
    assert "connection refused" in first.error and second.error == ""


def test_no_answer_by_the_deadline_means_the_device_text() -> None:
    release = threading.Event()
    client = FakeClient("too late", block=release)
    engine, _local = engine_with(client)
    try:
        assert engine.transcribe(PHRASE).text == "local words"
    finally:
        release.set()
    assert "within 0.3 s" in engine.outcomes[0].error
    assert not engine.health.up


def test_unbelievable_text_falls_back_for_the_phrase_only(caplog: pytest.LogCaptureFixture) -> None:
    client = FakeClient("")
    engine, _local = engine_with(client)
    caplog.set_level(logging.INFO, "voxkey")
    assert engine.transcribe(PHRASE).text == "local words"
    assert engine.transcribe(PHRASE).text == "local words"
    assert engine.health.up and client.calls == 2  # the server is still asked
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("Hello there.", True),
        ("", False),
        ("   ", False),
        ("hello\x00world", False),
        ("word " * 12, False),  # 12 words for 2 s: more than anyone says
        ("a" * 500, False),
        ("one two three four five six seven eight nine ten", True),
    ],
)
def test_check_text(text: str, ok: bool) -> None:
    if ok:
        check_text(text, 2.0, "srv")
    else:
        with pytest.raises(RemoteAsrError) as caught:
            check_text(text, 2.0, "srv")
        assert not caught.value.server_fault


# --- privacy and systemd --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "local"),
    [("192.168.1.20", True), ("10.0.0.5", True), ("127.0.0.1", True), ("fe80::1", True), ("fd12::5", True),
     ("8.8.8.8", False), ("2001:4860::8888", False)],
)  # fmt: skip
def test_local_network_addresses(address: str, local: bool) -> None:
    assert is_local(address) is local


def test_privacy_warns_for_plain_http_on_the_lan_and_any_address_outside_it() -> None:
    plain = privacy_findings(RemoteSettings(enabled=True, protocol="openai", url="http://192.168.1.20:8000"))
    assert not plain.ok and "unencrypted" in plain.detail and "https" in plain.fix
    outside = privacy_findings(RemoteSettings(enabled=True, protocol="openai", url="https://8.8.8.8"))
    assert not outside.ok and "not on the local network" in outside.detail
    good = privacy_findings(RemoteSettings(enabled=True, protocol="openai", url="https://192.168.1.20:8000"))
    assert good.ok and "audio goes to https://192.168.1.20:8000" in good.detail
    wyoming = privacy_findings(RemoteSettings(enabled=True, url="tcp://192.168.1.20:10300"))
    assert wyoming.ok and "unencrypted" in wyoming.detail


def test_doctor_says_where_audio_goes_and_whether_the_server_answers(unused_port: int) -> None:
    remote = RemoteSettings(enabled=True, protocol="openai", url=f"http://10.1.2.3:{unused_port}", timeout_s=0.5)
    config = config_module.Config(asr=AsrSettings(remote=remote))
    results = {r.name: r for r in Doctor(config).run()}
    assert not results["speech server privacy"].ok
    assert "10.1.2.3" in results["speech server privacy"].detail
    unreachable = results["speech server reachable"]
    assert not unreachable.ok and "on-device model" in unreachable.detail
    off = {r.name: r for r in Doctor(config_module.Config()).run()}
    assert not off["speech server"].used and off["speech server"].ok


@pytest.fixture
def unused_port() -> int:
    from tests.remote.servers import free_port

    return free_port()


def test_systemd_dropin_opens_only_the_server_and_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: apt-get install systemd")
    text = systemd_dropin(RemoteSettings(enabled=True, url="tcp://192.168.1.20:10300"))
    assert "IPAddressAllow=192.168.1.20\n" in text and "RestrictAddressFamilies=AF_INET AF_INET6\n" in text
    shutil.copy(REPO / "systemd" / "voxkey.service", tmp_path / "voxkey.service")
    (tmp_path / "voxkey.service.d").mkdir()
    (tmp_path / "voxkey.service.d" / "remote.conf").write_text(text)
    env = {"SYSTEMD_UNIT_PATH": f"{tmp_path}:", "PATH": "/usr/bin:/bin"}
    unit = str(tmp_path / "voxkey.service")
    verified = subprocess.run([analyze, "verify", unit], capture_output=True, text=True, env=env, timeout=120)
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr
    security = subprocess.run(
        [analyze, "security", "--offline=true", unit], capture_output=True, text=True, env=env, timeout=120
    ).stdout
    assert "allow list with non-localhost entries" in security  # the drop-in was read: one address allowed
    exposure = float(security.split("Overall exposure level for voxkey.service:")[1].split()[0])
    assert exposure <= 4.0


def test_voxkey_remote_systemd_prints_and_writes_the_dropin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from voxkey.cli import main

    config = tmp_path / "config.yaml"
    config.write_text("asr:\n  remote:\n    enabled: true\n    url: tcp://192.168.7.9:10300\n")
    assert main(["remote", "systemd", "--config", str(config)]) == 0
    assert "IPAddressAllow=192.168.7.9\n" in capsys.readouterr().out
    target = tmp_path / "voxkey.service.d" / "remote.conf"
    assert main(["remote", "systemd", "--config", str(config), "--write", str(target)]) == 0
    assert "IPAddressAllow=192.168.7.9\n" in target.read_text()
    config.write_text("asr:\n  model: tiny.en-q5_1\n")
    assert main(["remote", "systemd", "--config", str(config)]) == 2
    assert "asr.remote is off" in capsys.readouterr().err
