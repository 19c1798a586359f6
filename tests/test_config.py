"""The config file: typed values with defaults, and errors that point at file:line and the wrong value."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from voxkey import config
from voxkey.cli import main
from voxkey.config import Config
from voxkey.errors import ConfigError
from voxkey.typing_policy import UnsupportedPolicy

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    return caught.value


def test_empty_file_is_the_defaults(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, "# nothing set\n"))
    assert loaded == Config()
    assert loaded.source == tmp_path / "config.yaml"
    assert loaded.button.mode == "hold"
    assert loaded.output.transport == "usb"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_config_is_valid(path: Path) -> None:
    loaded = config.load(path)
    assert loaded.source == path


def test_examples_cover_usb_bluetooth_and_simulation() -> None:
    by_name = {p.stem: config.load(p) for p in EXAMPLES}
    assert by_name["usb"].output.transport == "usb"
    assert by_name["bluetooth"].output.transport in ("bluetooth", "both")
    assert by_name["simulate"].output.transport == "terminal"
    assert by_name["simulate"].button.source == "terminal"
    assert by_name["simulate"].leds.kind == "none"


def test_values_are_typed(tmp_path: Path) -> None:
    loaded = config.load(
        write(
            tmp_path,
            """
button:
  pin: GPIO17
  cancel_pin: 22
  mode: toggle
  double_press_s: 1      # an int where a float is expected is fine
leds:
  kind: rgb
  rgb: {red: 5, green: 6, blue: 13}
output:
  unsupported_characters: skip
usb:
  device: ~/hidg-test
commands:
  disabled_phrases: [period, comma]
  replacements: {vox key: voxkey}
audio:
  device: 2
""",
        )
    )
    assert loaded.button.pin == "GPIO17"
    assert loaded.button.cancel_pin == 22
    assert loaded.button.double_press_s == 1.0 and isinstance(loaded.button.double_press_s, float)
    assert loaded.leds.rgb.blue == 13
    assert loaded.output.unsupported_characters is UnsupportedPolicy.SKIP
    assert loaded.usb.device == Path("~/hidg-test").expanduser()
    assert loaded.commands.disabled_phrases == frozenset({"period", "comma"})
    assert dict(loaded.commands.replacements) == {"vox key": "voxkey"}
    assert loaded.audio.device == 2


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("button:\n  pin: 17\n  mode: holdd\n", 3, "button.mode must be one of hold, toggle, auto, not 'holdd'"),
        ("button:\n  pull_up: 1\n", 2, "button.pull_up must be true or false, not 1"),
        ("button:\n  pin: [1, 2]\n", 2, "button.pin must be a whole number or text, not a list"),
        ("button:\n  pin: 1.5\n", 2, "button.pin must be a whole number or text, not 1.5"),
        ("button:\n  cancel_pin: [1]\n", 2, "button.cancel_pin must be a whole number or text or empty (null)"),
        ("leds:\n  kind: pwm\n  brightness: 2\n", 3, "leds.brightness must be in (0, 1], not 2"),
        ("\n\noutput:\n  host_wait_s: fast\n", 4, "output.host_wait_s must be a number, not 'fast'"),
        ("output:\n  unsupported_characters: guess\n", 2, "must be one of transliterate, skip, linux, not 'guess'"),
        ("vad:\n  aggressiveness: 7\n", 2, "vad.aggressiveness must be 0, 1, 2 or 3, not 7"),
        ("vad:\n  frame_ms: 30\n  aggressiveness: 7\n", 3, "vad.aggressiveness must be 0, 1, 2 or 3, not 7"),
        ("asr:\n  threads: 0\n", 2, "asr.threads must be at least 1, not 0"),
        ("asr:\n  language: en\n  threads: 0\n", 3, "asr.threads must be at least 1, not 0"),
        ("asr:\n  tokens_per_second: 6\n  token_cap_base: 0\n", 3, "asr.token_cap_base must be positive"),
        ("bluetooth:\n  adapter: hci0\n  host_settle_s: 99\n", 3, "host_settle_s must be between 0 and 30"),
        ("bluetooth:\n  report_window: 8\n  name: ''\n", 3, "bluetooth name '' must be 1-29 bytes long"),
        ("audio:\n  block_ms: 30\n  stall_timeout_s: 0\n", 3, "audio.stall_timeout_s must be greater than 0"),
        ("asr:\n  remote:\n    enabled: true\n", 3, "asr.remote.url is needed when asr.remote is enabled"),
        ("commands:\n  quotes: true\n  disabled_phrases: [peroid]\n", 3, "'peroid' is not a spoken command"),
        ("commands:\n  disabled_phrases: [peroid]\n", 2, "(did you mean 'period'?)"),
        ("commands:\n  undo: true\n  replacements: {' ': x}\n", 3, "' ' has no words to replace"),
        ("button: 17\n", 1, "button must be a mapping of settings, not 17"),
        ("- just\n- a list\n", 1, "the file must be a mapping of settings"),
        ("dictation:\n  auto_silence_s: -1\n", 2, "auto_silence_s must be greater than 0, not -1"),
        ("dictation:\n  space_between: true\n  auto_silence_s: -1\n", 3, "dictation.auto_silence_s must be greater"),
        ("output:\n  layout: us\n  host_wait_s: 0\n", 3, "output.host_wait_s must be greater than 0, not 0"),
        ("button:\n  mode: hold\n  bounce_s: -0.1\n", 3, "button.bounce_s must be 0 or more, not -0.1"),
        ("button:\n  pin: 17\n  cancel_pin: 17\n", 3, "button.cancel_pin must differ from button.pin (17)"),
        ("button:\n  mode: toggle\n  eject_gesture: triple-tap\n", 3, "eject_gesture triple-tap needs mode hold"),
        ("button:\n  eject_gesture: cancel-button\n", 2, "eject_gesture cancel-button needs a cancel_pin"),
        ("button:\n  pin: 5\n  eject_gesture: cancel-button\n", 3, "eject_gesture cancel-button needs a cancel_pin"),
        ("button:\n  eject_gesture: double-tap\n", 2, "one of off, triple-tap, cancel-button"),
    ],
)
def test_wrong_value_names_file_line_and_value(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    error = error_of(tmp_path, text)
    assert error.where == f"{tmp_path / 'config.yaml'}:{line}"
    assert str(error).startswith(f"{tmp_path / 'config.yaml'}:{line}: ")
    assert fragment in str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize(
    ("text", "line", "also"),
    [
        ("button:\n  pin: 17\n  mode: hold\n  cancel_pin: 17\n", 4, "button.pin is on line 2"),
        ("button:\n  cancel_pin: 17\n  pin: 17\n", 2, "button.pin is on line 3"),
        ("button:\n  mode: toggle\n  pin: 4\n  eject_gesture: triple-tap\n", 4, "button.mode is on line 2"),
    ],
)
def test_conflicting_values_name_both_lines(tmp_path: Path, text: str, line: int, also: str) -> None:
    """The value to change gives file:line; the value it conflicts with is named with its own line."""
    error = error_of(tmp_path, text)
    assert error.where == f"{tmp_path / 'config.yaml'}:{line}"
    assert str(error).endswith(f"({also})")


def test_conflict_with_a_default_names_only_the_written_line(tmp_path: Path) -> None:
    """``pin`` left at its default 17 has no line to name; the error must not invent one."""
    error = error_of(tmp_path, "button:\n  mode: hold\n  cancel_pin: 17\n")
    assert error.where == f"{tmp_path / 'config.yaml'}:3"
    assert "line" not in str(error).removeprefix(f"{error.where}: ")


def test_unknown_setting_suggests_the_close_one(tmp_path: Path) -> None:
    error = error_of(tmp_path, "button:\n  pin: 17\n  long_pres_s: 2\n")
    assert error.where is not None and error.where.endswith(":3")
    assert "unknown setting 'long_pres_s' in button (did you mean 'long_press_s'?)" in str(error)


def test_unknown_section(tmp_path: Path) -> None:
    error = error_of(tmp_path, "buton:\n  pin: 17\n")
    assert error.where is not None and error.where.endswith(":1")
    assert "unknown setting 'buton' at the top level (did you mean 'button'?)" in str(error)


def test_setting_twice_is_an_error(tmp_path: Path) -> None:
    error = error_of(tmp_path, "button:\n  pin: 17\n  pin: 18\n")
    assert error.where is not None and error.where.endswith(":3")
    assert "button.pin is set twice" in str(error)


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    error = error_of(tmp_path, "button:\n  pin: 17\n mode: [hold\n")
    assert error.where == f"{tmp_path / 'config.yaml'}:3"
    assert "not valid YAML" in str(error)
    assert "(line 3, column 2)" in str(error)
    assert "block mapping that began on line 1, column 1" in str(error)


@pytest.mark.parametrize(
    ("text", "construct"),
    [
        ("button:\n  pin: 17\n  mode: [hold\n", "flow sequence that began on line 3, column 9"),
        ("button:\n  pin: 17\n  mode: {a: 1\n# the end\n", "flow mapping that began on line 3, column 9"),
        ('button:\n  pin: 17\n  mode: "hold\n', "quoted scalar that began on line 3, column 9"),
    ],
)
def test_unclosed_construct_is_reported_where_it_began(tmp_path: Path, text: str, construct: str) -> None:
    """PyYAML notices an unclosed bracket or quote at the end of the stream, past the file's last line."""
    error = error_of(tmp_path, text)
    assert error.where == f"{tmp_path / 'config.yaml'}:3"
    assert "at the end of the file" in str(error)
    assert construct in str(error)


def test_missing_named_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "absent.yaml")


def test_missing_default_file_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.CONFIG_ENV, str(tmp_path / "absent.yaml"))
    assert config.load() == Config()


def test_default_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.CONFIG_ENV, str(write(tmp_path, "button:\n  mode: auto\n")))
    assert config.load().button.mode == "auto"


SECTIONS = [f.name for f in dataclasses.fields(Config) if f.name != "source"]


def test_sections_are_read_as_the_whole_file_reads_them(tmp_path: Path) -> None:
    path = write(tmp_path, "output:\n  layout: de\nbluetooth:\n  name: vk-e2e\nasr:\n  model: tiny.en-q8_0\n")
    whole = config.load(path)
    sections, source = config.load_sections(SECTIONS, path)
    assert source == path
    assert sections == {name: getattr(whole, name) for name in SECTIONS}
    assert sections["bluetooth"].name == "vk-e2e" and sections["asr"].model == "tiny.en-q8_0"


def test_without_a_file_the_sections_are_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.CONFIG_ENV, str(tmp_path / "absent.yaml"))
    sections, source = config.load_sections(SECTIONS)
    assert source is None
    assert sections == {name: getattr(Config(), name) for name in SECTIONS}
    with pytest.raises(ConfigError, match="does not exist"):
        config.load_sections(["output"], tmp_path / "named-but-absent.yaml")


@pytest.mark.parametrize(
    "text",
    [
        "output:\n  layout: de\n  transport: [usb\n",
        "output:\n  layout: de\nbluetoth:\n  name: vk\n",
        "output:\n  layout: de\n  host_wait_s: 0\n",
        "usb:\n  udc: a\nusb:\n  udc: b\n",
        "- a list\n",
    ],
)
def test_reading_sections_fails_as_reading_the_whole_file_does(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as whole:
        config.load(path)
    with pytest.raises(ConfigError) as sections:
        config.load_sections(["output", "usb"], path)
    assert str(sections.value) == str(whole.value)


def test_sections_not_asked_for_are_not_read(tmp_path: Path) -> None:
    """A command that types does not read (or import the modules of) the speech settings."""
    path = write(tmp_path, "output:\n  layout: de\nasr:\n  threads: 0\n")
    sections, _ = config.load_sections(["output"], path)
    assert sections["output"].layout == "de"
    with pytest.raises(ConfigError, match=r":4: asr\.threads must be at least 1"):
        config.load_sections(["output", "asr"], path)


def test_defaults_dump_loads_back_to_the_defaults(tmp_path: Path) -> None:
    assert config.load(write(tmp_path, config.dump_defaults())) == Config()


def test_cli_config_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "button:\n  mode: toggle\n")
    assert main(["config", "check", str(good)]) == 0
    assert "ok (toggle mode" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("output:\n  transport: carrier-pigeon\n")
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: output.transport must be one of" in err
    assert "'carrier-pigeon'" in err


def test_apa102_leds_are_read_and_their_mistakes_located(tmp_path: Path) -> None:
    text = "leds:\n  kind: apa102\n  brightness: 0.2\n  apa102:\n    count: 3\n    spi_bus: 0\n    spi_device: 1\n"
    loaded = config.load(write(tmp_path, text))
    assert loaded.leds.kind == "apa102" and loaded.leds.brightness == 0.2
    assert (loaded.leds.apa102.count, loaded.leds.apa102.spi_bus, loaded.leds.apa102.spi_device) == (3, 0, 1)
    assert loaded.leds.apa102.uses_spi
    default = config.loads("leds:\n  kind: apa102\n").leds.apa102
    assert default.count == 3 and default.uses_spi  # the ReSpeaker 2-Mic HAT's three, on SPI
    bonnet = config.loads("leds:\n  kind: apa102\n  apa102: {clock_pin: 6, data_pin: 5}\n").leds.apa102
    assert (bonnet.clock_pin, bonnet.data_pin, bonnet.uses_spi) == (6, 5, False)
    for wrong, line, fragment in [
        ("leds:\n  apa102:\n    count: 0\n", 3, "count must be 1 to 1024 LEDs, not 0"),
        ("leds:\n  apa102:\n    spi_device: -1\n", 3, "spi_device must be 0 or more, not -1"),
        ("leds:\n  apa102:\n    spi_bus: zero\n", 3, "leds.apa102.spi_bus must be a whole number, not 'zero'"),
        ("leds:\n  apa102:\n    cont: 3\n", 3, "unknown setting 'cont' in leds.apa102 (did you mean 'count'?)"),
        ("leds:\n  apa102:\n    clock_pin: 6\n", 3, "clock_pin and data_pin go together"),
        ("leds:\n  apa102: {clock_pin: 5, data_pin: 5}\n", 2, "clock_pin and data_pin must differ, not both 5"),
    ]:
        error = error_of(tmp_path, wrong)
        assert error.where == f"{tmp_path / 'config.yaml'}:{line}", (wrong, error)
        assert fragment in str(error), (wrong, error)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("leds:\n  apa102:\n    spi_bus: 0\n    count: 0\n", 4, "leds.apa102.count must be 1 to 1024 LEDs, not 0"),
        ("leds:\n  apa102:\n    count: 3\n    spi_device: -1\n", 4, "leds.apa102.spi_device must be 0 or more"),
        ("leds:\n  apa102:\n    count: 3\n    data_pin: 5\n", 4, "clock_pin and data_pin go together"),
        (
            "leds:\n  kind: rgb\n  rgb:\n    red: 5\n    green: 5\n",
            5,
            "leds.rgb.green must differ from leds.rgb.red (5)",
        ),
        ("leds:\n  rgb:\n    blue: 5\n", 3, "leds.rgb.blue must differ from leds.rgb.red (5)"),
        ("usb:\n  device: /dev/hidg0\n  udc: ''\n", 3, "usb.udc must name a USB device controller"),
    ],
)
def test_every_section_names_the_line_of_the_value_at_fault(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    """Rules checked once the whole section is known still point at the value, not at the section's first line."""
    error = error_of(tmp_path, text)
    assert error.where == f"{tmp_path / 'config.yaml'}:{line}", error
    assert fragment in str(error), error


def _sections(cls: type, seen: dict[type, None]) -> dict[type, None]:
    """``cls`` and every settings dataclass its settings hold, however deep (``leds.rgb``, ``asr.remote``)."""
    import typing

    seen[cls] = None
    for hint in typing.get_type_hints(cls).values():
        for candidate in (hint, *typing.get_args(hint)):
            if dataclasses.is_dataclass(candidate) and isinstance(candidate, type) and candidate not in seen:
                _sections(candidate, seen)
    return seen


def test_every_section_follows_the_settings_convention() -> None:
    """The convention (see ``voxkey.config``), in whichever module a section lives: frozen, a docstring under
    every setting, and rules checked in ``__post_init__`` (no separate ``validate`` a caller could forget)."""
    import ast
    import inspect
    import textwrap

    sections = [cls for cls in _sections(config.Config, {}) if cls is not config.Config]
    assert len(sections) == 14, [cls.__name__ for cls in sections]
    for cls in sections:
        assert cls.__dataclass_params__.frozen, cls  # type: ignore[attr-defined]
        assert not hasattr(cls, "validate"), f"{cls.__name__}: validate() instead of __post_init__"
        node = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
        assert isinstance(node, ast.ClassDef)
        body = node.body
        undocumented = [
            statement.target.id
            for statement, following in zip(body, [*body[1:], None], strict=True)
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
            if not (isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant))
        ]
        assert undocumented == [], f"{cls.__name__}: settings without a docstring: {undocumented}"


# --- what mutation testing (benchmarks/mutation.py config) showed no test checked ------------------------


def test_an_empty_file_gives_the_behaviour_the_readme_promises() -> None:
    """Defaults a user relies on without writing them; ``Config()`` equals itself, so only values catch a change.

    README: "Each phrase is typed about a second after you finish it, while you keep talking", "a press right
    after release (or the cancel button) erases the one just spoken", kept text goes on by itself if the host
    is back within ``output.resume_within_s`` "(5 s ...)" and expires after ``output.host_wait_s`` "(300 s)".
    """
    loaded = config.loads("")
    assert loaded.dictation.type_while_talking is True
    assert loaded.button.cancel_by_press_after_stop is True
    assert loaded.output.resume_within_s == 5.0
    assert loaded.output.host_wait_s == 300.0


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("button:\n  mode: hold\n  double_press_s: 0\n", 3, "button.double_press_s must be greater than 0, not 0"),
        ("button:\n  long_press_s: -1\n", 2, "button.long_press_s must be greater than 0, not -1"),
        ("leds:\n  kind: pwm\n  brightness: 0\n", 3, "leds.brightness must be in (0, 1], not 0"),
        ("leds:\n  kind: pwm\n  brightness: -0.5\n", 3, "leds.brightness must be in (0, 1], not -0.5"),
        ("leds:\n  apa102:\n    count: 1025\n", 3, "leds.apa102.count must be 1 to 1024 LEDs, not 1025"),
        # pin names are text: two equal names written apart are equal, not the same object
        ("leds:\n  kind: rgb\n  rgb:\n    red: BOARD11\n    green: BOARD11\n", 5, "must differ from leds.rgb.red"),
        ("hello\n", 1, "the file must be a mapping of settings, not 'hello'"),
        ("usb:\n  udc: [a, b]\n", 2, "usb.udc must be a single value, not a list"),
        ("output:\n  layout: us\n  prefer: \x07usb\n", 3, "control character U+0007 is not allowed; delete it"),
        ("\x07\n", 1, "control character U+0007"),
        ("button:\n  pin: [17\n", 2, "flow sequence that began on line 2, column 8"),
    ],
)
def test_a_mistake_at_a_bound_or_an_odd_place_is_an_error_at_its_line(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    error = error_of(tmp_path, text)
    assert error.where == f"{tmp_path / 'config.yaml'}:{line}", error
    assert fragment in str(error), error


@pytest.mark.parametrize(
    "text",
    [
        "leds:\n  kind: pwm\n  brightness: 1\n",
        "leds:\n  kind: apa102\n  apa102:\n    count: 1024\n",
        "leds:\n  kind: apa102\n  apa102:\n    count: 1\n",
        "null\n",
        "~\n",
    ],
)
def test_values_at_the_edge_of_what_is_allowed_are_read(text: str) -> None:
    config.loads(text)
