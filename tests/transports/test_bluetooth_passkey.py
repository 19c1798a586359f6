"""Passkey pairing on the agent's side: KeyboardOnly, RequestPasskey answered from a source, no downgrade."""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from dbus_fast import DBusError

from voxkey import config as config_module
from voxkey.errors import ConfigError
from voxkey.transports.bluetooth import bluez
from voxkey.transports.bluetooth.agent import PairingAgent, PairingMethod
from voxkey.transports.bluetooth.settings import BluetoothSettings


def _method(agent: PairingAgent, name: str) -> Callable[..., Any]:
    for cls in type(agent).__mro__:
        if name in cls.__dict__:
            function = cls.__dict__[name]
            return getattr(function, "__wrapped__", function)  # type: ignore[no-any-return]
    raise AssertionError(name)


def make_agent(method: PairingMethod, pairing: bool = True) -> PairingAgent:
    return PairingAgent("/agent", lambda: pairing, lambda device: False, method=method)


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


def test_each_pairing_method_registers_its_io_capability() -> None:
    assert make_agent("passkey").capability == "KeyboardOnly"
    assert make_agent("just_works").capability == "NoInputNoOutput"


def test_passkey_is_the_default_and_a_config_can_choose_just_works(tmp_path: Any) -> None:
    assert BluetoothSettings().pairing == "passkey"
    path = tmp_path / "config.yaml"
    path.write_text("bluetooth:\n  pairing: just_works\n")
    assert config_module.load(path).bluetooth.pairing == "just_works"
    path.write_text("bluetooth:\n  name: kb\n  pairing: pin\n")
    with pytest.raises(ConfigError) as error:
        config_module.load(path)
    assert ":3" in str(error.value) and "pairing" in str(error.value)


@pytest.mark.parametrize("call", ["RequestAuthorization", "RequestConfirmation"])
def test_passkey_mode_refuses_just_works_even_in_pairing_mode(call: str) -> None:
    """A host (or an attacker) that claims to have no display must not get an unauthenticated bond."""
    args = ("/dev",) if call == "RequestAuthorization" else ("/dev", 123456)
    with pytest.raises(DBusError) as refused:
        _method(make_agent("passkey"), call)(make_agent("passkey"), *args)
    assert refused.value.type == bluez.ERROR_REJECTED
    assert "just_works" in (refused.value.text or "")
    agent = make_agent("just_works")
    _method(agent, call)(agent, *args)  # Just Works mode still says yes in pairing mode


def test_request_passkey_answers_with_what_the_source_gives() -> None:
    agent = make_agent("passkey")
    asked: list[str] = []
    future: concurrent.futures.Future[str] = concurrent.futures.Future()

    def source(device: str) -> concurrent.futures.Future[str]:
        asked.append(device)
        return future

    agent.passkey_source = source

    async def scenario() -> int:
        request = asyncio.ensure_future(_method(agent, "RequestPasskey")(agent, "/dev"))
        await asyncio.sleep(0.01)
        assert not request.done(), "BlueZ's call waits for the user"
        future.set_result("004711")
        return int(await asyncio.wait_for(request, 5))

    assert run(scenario()) == 4711
    assert asked == ["/dev"]


def test_the_host_cancelling_cancels_the_spoken_code_request() -> None:
    agent = make_agent("passkey")
    future: concurrent.futures.Future[str] = concurrent.futures.Future()
    agent.passkey_source = lambda device: future

    async def scenario() -> None:
        request = asyncio.ensure_future(_method(agent, "RequestPasskey")(agent, "/dev"))
        await asyncio.sleep(0.01)
        _method(agent, "Cancel")(agent)
        with pytest.raises(DBusError) as cancelled:
            await asyncio.wait_for(request, 5)
        assert cancelled.value.type == bluez.ERROR_CANCELED

    run(scenario())
    assert future.cancelled()


@pytest.mark.parametrize(
    ("method", "pairing", "source", "why"),
    [
        ("passkey", False, True, "not in pairing mode"),
        ("passkey", True, False, "cannot take a passkey here"),
        ("just_works", True, True, "Just Works"),
    ],
)
def test_request_passkey_is_refused_when_nothing_may_answer(
    method: PairingMethod, pairing: bool, source: bool, why: str
) -> None:
    agent = make_agent(method, pairing)
    asked: list[str] = []
    if source:
        agent.passkey_source = lambda device: asked.append(device) or concurrent.futures.Future()  # type: ignore[func-returns-value]
    with pytest.raises(DBusError) as refused:
        run(_method(agent, "RequestPasskey")(agent, "/dev"))
    assert refused.value.type == bluez.ERROR_REJECTED
    assert why in (refused.value.text or "")
    assert asked == []


# --- voxkey pair / voxkey type --pair: the code typed on a terminal ------------------------------------


def test_the_pairing_flag_overrides_the_config(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from voxkey import transports
    from voxkey.cli import main
    from voxkey.errors import BluetoothError

    seen: list[BluetoothSettings] = []

    def record(settings: BluetoothSettings) -> Any:
        seen.append(settings)
        raise BluetoothError("stopped by the test before BlueZ")

    monkeypatch.setattr(transports.bluetooth, "open_bluetooth_link", record)
    path = tmp_path / "config.yaml"
    path.write_text("bluetooth:\n  pairing: passkey\n")
    assert main(["pair", "--config", str(path)]) == 1
    assert main(["pair", "--config", str(path), "--pairing", "just_works"]) == 1
    assert main(["type", "hi", "--transport", "bluetooth", "--config", str(path), "--pairing", "just_works"]) == 1
    assert [s.pairing for s in seen] == ["passkey", "just_works", "just_works"]


def test_the_terminal_asks_again_until_it_gets_six_digits(capsys: pytest.CaptureFixture[str]) -> None:
    from voxkey.cli.bluetooth import TerminalPasskey

    lines = ["12 34 5", "the code is 123 456"]

    def typed() -> str:
        if not lines:
            raise EOFError
        return lines.pop(0)

    assert TerminalPasskey(typed)("/dev").result(timeout=5) == "123456"
    assert "not 6 digits" in capsys.readouterr().err


def test_a_new_request_gets_the_next_line_after_the_host_gave_up() -> None:
    """The host cancels while the user types; it pairs again with a new code: one reader, the newest request."""
    from voxkey.cli.bluetooth import TerminalPasskey

    lines: queue.Queue[str] = queue.Queue()
    source = TerminalPasskey(lines.get)
    first = source("/dev")
    first.cancel()
    second = source("/dev")
    lines.put("654321")
    assert second.result(timeout=5) == "654321"


def test_the_terminal_closing_cancels_the_request() -> None:
    from voxkey.cli.bluetooth import TerminalPasskey

    def closed() -> str:
        raise EOFError

    future = TerminalPasskey(closed)("/dev")
    with pytest.raises(concurrent.futures.CancelledError):
        future.result(timeout=5)
