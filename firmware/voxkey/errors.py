"""voxkey's own exceptions.

Every error a user can meet is one of these, and its message says what to do
next: the CLI prints ``str(error)`` on one line and exits non-zero, so the
message is the whole user interface of a failure.
"""

from __future__ import annotations


class VoxkeyError(Exception):
    """Base of every error voxkey raises on purpose."""

    exit_code: int = 1


class ConfigError(VoxkeyError):
    """The configuration file is unreadable, malformed or has a wrong value.

    ``where`` is ``"path:line"`` when the position is known, so the message
    points at the exact place to edit.

    A settings dataclass that rejects a value (or two values that conflict)
    cannot know where they were written; it names them in ``settings``, the one
    to change first, and the config reader turns the names into the lines of
    those values.
    """

    exit_code = 2

    def __init__(self, message: str, where: str | None = None, *, settings: tuple[str, ...] = ()) -> None:
        self.message = message
        self.where = where
        self.settings = settings
        super().__init__(f"{where}: {message}" if where else message)


class LayoutError(VoxkeyError):
    """A keyboard layout is unknown or its data file is broken."""


class UnsupportedCharacterError(VoxkeyError):
    """The host layout has no key (or key sequence) for a character."""

    def __init__(self, char: str, layout: str) -> None:
        self.char = char
        self.layout = layout
        super().__init__(
            f"layout {layout!r} cannot type {char!r} (U+{ord(char):04X}); "
            "choose another layout or set unsupported_characters: transliterate"
        )


class TransportError(VoxkeyError):
    """The keyboard transport cannot be used at all (missing device, no permission)."""


class HostUnavailableError(TransportError):
    """The host is not there right now (unplugged, asleep, not connected).

    Text is kept and typing resumes when the host returns; this is raised only
    when the configured wait runs out.
    """


class KeptTextDropped(VoxkeyError):
    """Text waiting for a host was dropped: the user cancelled it (``by_user``), or voxkey is stopping.

    Not a failure when the user asked for it; the typist logs what was dropped either way.
    """

    def __init__(self, why: str, *, by_user: bool) -> None:
        self.by_user = by_user
        super().__init__(f"text waiting for a host dropped ({why})")


class GadgetError(VoxkeyError):
    """The USB gadget (configfs, libcomposite, UDC) is not set up."""


class BluetoothError(VoxkeyError):
    """BlueZ or the Bluetooth adapter cannot be used."""


class AudioError(VoxkeyError):
    """No microphone, a busy or vanished device, or an unreadable audio file."""


class ModelError(VoxkeyError):
    """A whisper model is missing, corrupt, or cannot be downloaded."""


class HardwareError(VoxkeyError):
    """GPIO pins for the button or LEDs cannot be used."""


class RemoteAsrError(VoxkeyError):
    """The speech server (asr.remote) did not give a usable transcript; the on-device model takes over.

    ``server_fault`` is False when the server answered but the text was not
    believable (empty, far too long): the server stays in use for the next phrase.
    """

    def __init__(self, message: str, *, server_fault: bool = True) -> None:
        self.server_fault = server_fault
        super().__init__(message)
