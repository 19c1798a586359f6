"""The config every command reads: the daemon's file, with the command line's flags over it.

A user who set ``bluetooth.name`` or ``asr.model`` once expects ``voxkey pair``
and ``voxkey transcribe`` to use them, as ``voxkey run`` does. So every command
finds the file the daemon's way (``--config FILE``, else ``$VOXKEY_CONFIG``,
else ``/etc/voxkey/config.yaml`` if it exists, else the defaults), and a flag
given on the command line wins for that one run. Commands declare such flags
with ``default=None``: None means "not given, take the config's value".

A command reads only the sections it uses (``load_sections``; ``voxkey run``
and ``voxkey doctor`` read them all), so a mistake in a section it does not
use does not stop it. Reading the config imports nothing heavy either way
(see ``voxkey.config``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from voxkey import config as config_module

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from voxkey.config import Config

log = logging.getLogger("voxkey.cli")

Section = TypeVar("Section", bound="DataclassInstance")


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"config file (default: ${config_module.CONFIG_ENV}, else {config_module.DEFAULT_PATH} if it exists, "
        "else the defaults); flags override its settings",
    )


def load_config(args: argparse.Namespace) -> Config:
    """The whole config ``voxkey run`` would use; ``-v`` logs which file it was, or that there was none."""
    loaded = config_module.load(args.config)
    _say_which(args, loaded.source)
    return loaded


def load_sections(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The named sections of the config ``load_config`` reads, checked the same way (see ``voxkey.config``)."""
    sections, source = config_module.load_sections(names, args.config)
    _say_which(args, source)
    return sections


def _say_which(args: argparse.Namespace, source: Path | None) -> None:
    """Log the config file once per command, however many times the command reads sections of it."""
    if getattr(args, "config_logged", False):
        return
    args.config_logged = True
    if source is not None:
        log.info("config: %s", source)
    else:
        log.info("config: none (%s does not exist), using the defaults", config_module.default_path())


def with_flags(section: Section, args: argparse.Namespace, flags: Mapping[str, str]) -> Section:
    """A config section with the flags the user gave put over it; ``flags`` maps option dest → setting.

    The result is validated as the file's values are (``dataclasses.replace``
    runs the section's ``__post_init__``), so a wrong flag fails with the same
    message a wrong setting would.
    """
    given = {setting: getattr(args, dest) for dest, setting in flags.items() if getattr(args, dest, None) is not None}
    return dataclasses.replace(section, **given)
