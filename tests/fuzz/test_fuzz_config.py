"""Fuzz the config reader the way ``voxkey run --config FILE`` uses it: ``voxkey.config.load(path)``.

Whatever a user (or a broken editor, or a half-written file after a power cut)
leaves in the file, the reader's answer is a ``Config`` or a ``ConfigError``
whose ``where`` is ``file:line`` with a line the file has, never a traceback.
A value the reader accepts must also be one the daemon can start with: the
pieces built from the settings at start that need no hardware (the capture
buffer, the phrase segmenter, the LED and button timing) are built here too.

Budget (CI): 300 + 300 + 200 examples, about 15 s together on the 2-core dev machine.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from voxkey import config as config_module
from voxkey.audio import CaptureBuffer
from voxkey.config import Config
from voxkey.errors import ConfigError
from voxkey.vad import PhraseSegmenter

from . import budget

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "usb.yaml"


def setting_paths(cls: type[Any] = Config, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every setting a file can write, as (section, ..., name) with its type: nested sections included."""
    paths: list[tuple[tuple[str, ...], Any]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init or not config_module._from_file(cls, f.name):
            continue
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            paths.extend(setting_paths(hint, (*prefix, f.name)))
        else:
            paths.append(((*prefix, f.name), hint))
    return paths


SETTINGS = setting_paths()

# YAML spellings of values of every kind, edge cases first: a setting gets any of them, of any type.
yaml_scalars = st.one_of(
    st.sampled_from(
        [".nan", ".inf", "-.inf", "~", "null", "''", "yes", "no", "on", "0x7fffffff", "1e400", "-0", "1" + "0" * 400]
    ),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.integers(min_value=-3, max_value=70_000).map(str),
    st.floats(allow_nan=False).map(repr),
    st.floats(min_value=-5, max_value=400).map(lambda x: f"{x:.3f}"),
    st.booleans().map(lambda b: "true" if b else "false"),
    st.text(max_size=12).map(json.dumps),
    st.from_regex(r"[a-z0-9_.\-/ ]{0,12}", fullmatch=True).map(json.dumps),
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
        st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), inner, max_size=3).map(
            lambda d: "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"
        ),
    ),
    max_leaves=4,
)


def document(values: dict[tuple[str, ...], str]) -> str:
    """A block-style YAML file setting each (section, ..., name) path to a YAML value."""
    tree: dict[str, Any] = {}
    for path, value in values.items():
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value

    def lines(node: dict[str, Any], indent: int) -> list[str]:
        out: list[str] = []
        for key, value in node.items():
            if isinstance(value, dict):
                out.append(" " * indent + f"{key}:")
                out.extend(lines(value, indent + 2))
            else:
                out.append(" " * indent + f"{key}: {value}")
        return out

    return "\n".join(lines(tree, 0)) + "\n"


def assert_points_into(exc: ConfigError, text: str, path: Path) -> None:
    assert exc.where is not None, f"no file:line in {exc}"
    match = re.fullmatch(re.escape(str(path)) + r":(\d+)", exc.where)
    assert match, exc.where
    last_line = max(1, len(text.splitlines()))
    assert 1 <= int(match[1]) <= last_line, f"{exc} points past the file's {last_line} lines"
    assert str(exc).startswith(f"{path}:{match[1]}: ")


def check(text: str, path: Path) -> Config | None:
    """Load ``text`` as the CLI does (``voxkey run``: all of it; ``voxkey type``: some sections).

    Either way the answer is settings or a ConfigError pointing at a line the file has.
    """
    path.write_text(text, encoding="utf-8")
    try:
        config_module.load_sections(["output", "usb", "commands"], path)
    except ConfigError as exc:
        assert_points_into(exc, text, path)
    try:
        loaded = config_module.load(path)
    except ConfigError as exc:
        assert_points_into(exc, text, path)
        return None
    start_pieces(loaded)
    return loaded


def start_pieces(loaded: Config) -> None:
    """What the daemon builds from the settings before any hardware: none of it may fail on an accepted value."""
    for section in (loaded.button, loaded.dictation, loaded.output, loaded.audio, loaded.vad, loaded.asr):
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if isinstance(value, float):
                assert math.isfinite(value), f"{f.name} accepted {value}"
    capture = CaptureBuffer(loaded.audio)
    capture.start()
    capture.push(np.zeros(480, np.int16))
    capture.stop(post_roll=False)
    assert sum(block.size for block in capture.frames()) >= 480
    PhraseSegmenter(loaded.vad).feed(np.zeros(16000, np.int16))


@budget(300)
@given(st.text(max_size=200))
@example("\x1f")  # finding: PyYAML's ReaderError escaped (raised before parsing began)
@example("button:\n  pin: 3\n\x00")
@example("=")  # finding: ConstructorError escaped (a tag no safe constructor builds)
@example("button:\n  pin: !!python/name:os.system\n")
def test_random_text_is_a_config_or_a_config_error_with_its_line(tmp_path: Path, text: str) -> None:
    check(text, tmp_path / "random.yaml")


@budget(300)
@given(data=st.data())
def test_random_values_for_every_setting(tmp_path: Path, data: st.DataObject) -> None:
    chosen = data.draw(st.lists(st.sampled_from(SETTINGS), min_size=1, max_size=6, unique_by=lambda s: s[0]))
    values = {path: data.draw(yaml_values, label=".".join(path)) for path, _ in chosen}
    check(document(values), tmp_path / "values.yaml")


@budget(200)
@given(data=st.data())
def test_mutated_example_config(tmp_path: Path, data: st.DataObject) -> None:
    """The shipped example with characters deleted, inserted or replaced: typos a user makes."""
    text = EXAMPLE.read_text(encoding="utf-8")
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        edit = data.draw(st.sampled_from(["delete", "insert", "replace"]))
        piece = data.draw(st.sampled_from(list(":-[]{}\"'#&*!|>%@`, \n\t")) | st.text(max_size=3))
        if edit == "delete":
            text = text[:at] + text[at + data.draw(st.integers(1, 20)) :]
        elif edit == "insert":
            text = text[:at] + piece + text[at:]
        else:
            text = text[:at] + piece + text[at + 1 :]
    check(text, tmp_path / "mutated.yaml")


def test_every_setting_is_fuzzed() -> None:
    """The walk must reach nested sections too (leds.rgb.red, leds.apa102.count)."""
    names = {".".join(path) for path, _ in SETTINGS}
    assert {"leds.rgb.red", "leds.apa102.count", "audio.block_ms", "bluetooth.report_window"} <= names
    assert len(names) > 60


def test_example_loads() -> None:
    assert isinstance(yaml.safe_load(EXAMPLE.read_text()), dict)
    assert config_module.load(EXAMPLE).output.transport == "usb"


@pytest.mark.parametrize(
    "text",
    [
        "output:\n  host_wait_s: .nan\n",  # finding: NaN passed every "> 0" check
        "audio:\n  max_recording_s: .inf\n",  # finding: inf overflowed when turned into samples
        "output:\n  host_wait_s: 1" + "0" * 400 + "\n",  # finding: OverflowError converting to float
        "audio:\n  stall_timeout_s: -1\n",  # finding: ValueError in the first recording's queue wait
        "audio:\n  pre_roll_ms: -100000\n",  # finding: ValueError building the pre-roll ring
        "audio:\n  block_ms: 0\n",
    ],
)
def test_values_found_by_fuzzing_are_config_errors_at_their_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "found.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        config_module.load(path)
    assert caught.value.where == f"{path}:2"
