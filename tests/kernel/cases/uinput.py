"""Guest case: voxkey's uinput link (the PC simulation's "type into this desktop") on a real kernel.

The link creates a virtual keyboard through /dev/uinput; the case reads that
keyboard's evdev node like a desktop would and returns the raw events. The
host-side test decodes them with xkb (``tests/kernel/evdev_keys.py``).
"""

from __future__ import annotations

import json
import subprocess

from tests.kernel.cases import CaseResult, GuestContext, guest_case

TEXT = 'Hello, World! voxkey types 0123456789 (a-z) {braces} "quotes" ~tilde `tick` |pipe|\nnew line.\b!'

_TYPER = r"""
import json, select, sys, threading, time
from evdev import InputDevice, ecodes
from voxkey.hid import CONSUMER_EJECT
from voxkey.keymap import Layout
from voxkey.transports.base import Keyboard
from voxkey.transports.uinput import UinputLink

text = sys.stdin.read()
link = UinputLink()
device = InputDevice(link.device_path)
events, stop = [], threading.Event()

def record():
    while not stop.is_set():
        if select.select([device.fd], [], [], 0.1)[0]:
            for e in device.read():
                if e.type in (ecodes.EV_KEY, ecodes.EV_LED):
                    events.append([e.timestamp(), e.type, e.code, e.value])

recorder = threading.Thread(target=record)
recorder.start()
time.sleep(0.3)
keyboard = Keyboard(link, Layout.load("us"))
keyboard.type(text)
link.send_consumer(CONSUMER_EJECT, None)
time.sleep(0.5)
stop.set()
recorder.join(5)
name = device.name
device.close()
keyboard.close()
print(json.dumps({"events": events, "device": link.device_path, "name": name}))
"""


@guest_case("uinput.type_text", modules=("uinput",), timeout_s=240)
def uinput_type_text(context: GuestContext) -> CaseResult:
    """Type TEXT and then Eject through UinputLink; record what the virtual keyboard's evdev node reports."""
    run = subprocess.run(
        [context.python, "-S", "-c", _TYPER],
        input=TEXT,
        capture_output=True,
        text=True,
        timeout=200,
        env=context.voxkey_env(),
    )
    result: CaseResult = {"rc": run.returncode, "stderr": run.stderr[-4000:], "text": TEXT}
    if run.returncode == 0:
        result.update(json.loads(run.stdout))
    return result
