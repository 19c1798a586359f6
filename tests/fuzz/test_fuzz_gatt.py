"""Fuzz what a Bluetooth host can send to voxkey's GATT application, at its D-Bus handlers.

BlueZ turns every ATT request into a call on ``voxkey.transports.bluetooth.gatt``: ``WriteValue`` for
the output Report (the host's LEDs), the boot keyboard output report, Protocol Mode and the HID Control
Point; ``ReadValue`` with an offset for every characteristic and Report Reference descriptor;
``StartNotify``/``StopNotify`` when a host writes a CCCD. The handlers are called directly here (their
Python bodies), with random values of any length and random options, from a bonded and from an
unbonded central (BlueZ passes the central's device object path in ``options["device"]``).

Properties:
- nothing raises but ``DBusError`` (BlueZ turns that into an ATT error; anything else would be a
  traceback in the daemon's event loop and no answer to the host);
- an unbonded central changes nothing: every value, the protocol mode, the notifying flags and the
  callbacks the keyboard listens to are as before, and every guarded request is refused NotAuthorized;
- a bonded central's writes land only as HOGP allows: one LED byte, protocol mode 0 or 1.

CCCD writes reach voxkey as StartNotify/StopNotify, which carry no device: BlueZ does not say who
subscribed. An unbonded central cannot get there because every HID characteristic is
``encrypt-notify`` and voxkey is pairable only in pairing mode (``test_bluetooth.py`` checks the
flags); here the handlers must only survive any sequence of them.

Budget (CI): 400 + 200 + 100 examples, about 5 s on the 2-core dev machine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dbus_fast import DBusError, Variant
from hypothesis import example, given
from hypothesis import strategies as st

from voxkey.transports.bluetooth import bluez
from voxkey.transports.bluetooth.gatt import Characteristic, GattCallbacks, HidApplication

from . import budget

BONDED = "/org/bluez/hci0/dev_AA_BB_CC_DD_EE_01"
STRANGER = "/org/bluez/hci0/dev_66_66_66_66_66_66"


def python_body(obj: object, name: str) -> Callable[..., Any]:
    """The Python function behind a dbus-fast method (the decorator keeps it on the class)."""
    for cls in type(obj).__mro__:
        function = cls.__dict__.get(name)
        if function is not None:
            return getattr(function, "__wrapped__", function)  # type: ignore[no-any-return]
    raise AssertionError(f"no {name} on {obj!r}")


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def callbacks(self) -> GattCallbacks:
        return GattCallbacks(
            on_output_report=lambda value: self.calls.append(("leds", value)),
            on_protocol_mode=lambda mode: self.calls.append(("mode", mode)),
            on_notifying=lambda uuid, on: self.calls.append(("notify", (uuid, on))),
            on_control_point=lambda command: self.calls.append(("control", command)),
            host_allowed=lambda device: device == BONDED,
        )


def snapshot(app: HidApplication) -> tuple[object, ...]:
    values = []
    for interface in app.interfaces():
        values.append((interface.path, getattr(interface, "value", None), getattr(interface, "notifying", None)))
    return (app.protocol_mode, app.input_report.path, tuple(values))


def characteristics(app: HidApplication) -> list[Characteristic]:
    return [c for service in app.services for c in service.characteristics]


options = st.fixed_dictionaries(
    {},
    optional={
        "offset": st.integers(0, 0xFFFF).map(lambda n: Variant("q", n)),
        "mtu": st.integers(0, 0xFFFF).map(lambda n: Variant("q", n)),
        "type": st.sampled_from(["request", "command", "reliable"]).map(lambda t: Variant("s", t)),
        "link": st.sampled_from(["LE", "BR/EDR"]).map(lambda t: Variant("s", t)),
        "prepare-authorize": st.booleans().map(lambda b: Variant("b", b)),
    },
)
requests = st.lists(
    st.tuples(
        st.sampled_from(["write", "read", "read-descriptor"]), st.integers(0, 63), st.binary(max_size=600), options
    ),
    min_size=1,
    max_size=8,
)


def target_of(app: HidApplication, request: tuple[str, int, bytes, dict[str, Variant]]) -> Any:
    """The characteristic or descriptor a request goes to."""
    kind, index = request[0], request[1]
    pool: list[Any] = characteristics(app)
    if kind == "read-descriptor":
        pool = [d for c in pool for d in c.descriptors]
    return pool[index % len(pool)]


def call(app: HidApplication, request: tuple[str, int, bytes, dict[str, Variant]], device: str) -> None:
    """Make one request as ``device``, as BlueZ would for an ATT request from that central."""
    kind, _, value, opts = request
    opts = {**opts, "device": Variant("o", device)}
    target = target_of(app, request)
    if kind == "write":
        python_body(target, "WriteValue")(target, value, opts)
    else:
        python_body(target, "ReadValue")(target, opts)


def guarded(target: Any) -> bool:
    characteristic = target if isinstance(target, Characteristic) else target.characteristic
    return bool(characteristic._guarded)


@budget(400)
@given(requests)
@example([("write", 2, b"", {})])  # Protocol Mode, empty
@example([("write", 4, b"\x02" * 600, {"offset": Variant("q", 5)})])  # output report, long, with an offset
def test_an_unbonded_central_changes_nothing_and_gets_only_dbus_errors(
    requests: list[tuple[str, int, bytes, dict[str, Variant]]],
) -> None:
    recorder = Recorder()
    app = HidApplication("/fuzz", recorder.callbacks())
    before = snapshot(app)
    for request in requests:
        target = target_of(app, request)
        try:
            call(app, request, STRANGER)
        except DBusError as exc:
            if guarded(target):
                assert exc.type == bluez.ERROR_NOT_AUTHORIZED, exc.type
            continue
        assert not guarded(target), f"{request[0]} of {target.uuid} answered a stranger"
    assert snapshot(app) == before
    assert recorder.calls == []


@budget(200)
@given(requests)
@example([("write", 2, b"\x00", {}), ("write", 4, b"\x07\xff", {}), ("write", 10, b"\x01", {})])
def test_a_bonded_centrals_writes_land_only_as_hogp_allows(
    requests: list[tuple[str, int, bytes, dict[str, Variant]]],
) -> None:
    recorder = Recorder()
    app = HidApplication("/fuzz", recorder.callbacks())
    for request in requests:
        try:
            call(app, request, BONDED)
        except DBusError as exc:
            assert exc.type.startswith("org.bluez.Error."), exc.type
    assert app.protocol_mode in (0, 1)
    assert app.protocol.value == bytes([app.protocol_mode])
    assert len(app.keyboard_output.value) == 1 and app.keyboard_output.value == app.boot_output.value
    for name, value in recorder.calls:
        if name == "leds":
            assert isinstance(value, bytes) and len(value) == 1
        elif name == "mode":
            assert value in (0, 1)
        elif name == "control":
            assert isinstance(value, int) and 0 <= value <= 255


@budget(100)
@given(st.lists(st.tuples(st.integers(0, 63), st.booleans()), max_size=20))
def test_cccd_subscriptions_in_any_order_never_fail(subscriptions: list[tuple[int, bool]]) -> None:
    recorder = Recorder()
    app = HidApplication("/fuzz", recorder.callbacks())
    targets = characteristics(app)
    expected: dict[str, bool] = {}
    for index, on in subscriptions:
        target = targets[index % len(targets)]
        python_body(target, "StartNotify" if on else "StopNotify")(target)
        expected[target.path] = on
    for target in targets:
        assert target.notifying == expected.get(target.path, False)
    assert [call for call in recorder.calls if call[0] != "notify"] == []
