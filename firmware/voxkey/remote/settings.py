"""Settings of the optional speech server (the config file's ``asr.remote:`` subsection).

Kept apart from the clients so that reading a config never imports a network
library: ``voxkey.speech_settings`` names this class as the type of ``AsrSettings.remote``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from voxkey.errors import ConfigError

Protocol = Literal["wyoming", "openai"]
FallbackStart = Literal["at_deadline", "parallel"]

WYOMING_DEFAULT_PORT = 10300


@dataclass(frozen=True)
class RemoteSettings:
    """Where the speech server is and how long to wait for it; off unless ``enabled``."""

    enabled: bool = False
    """Off: every phrase is transcribed on the Pi."""
    protocol: Protocol = "wyoming"
    """``wyoming`` (wyoming-faster-whisper) or ``openai`` (an OpenAI-compatible transcription server)."""
    url: str = ""
    """wyoming: tcp://HOST:PORT (wyoming-faster-whisper listens on 10300); openai: http(s)://HOST[:PORT][/PREFIX],
    voxkey posts to PREFIX/v1/audio/transcriptions."""
    model: str = ""
    """The server's model name (empty: the server's default; openai servers often need one)."""
    language: str = ""
    """Empty: ``asr.language``."""
    timeout_s: float = 3.0
    """Per phrase: no answer by then and the on-device model types this phrase."""
    fallback: FallbackStart = "at_deadline"
    """When the on-device model starts on a phrase the server may miss."""
    token_file: Path | None = None
    """openai: a file holding a bearer token (never logged)."""
    ca_file: Path | None = None
    """openai over https: a CA bundle for a self-signed LAN server (always checked)."""
    retry_min_s: float = 5.0
    """A server that failed is tried again in the background after this ..."""
    retry_max_s: float = 300.0
    """... doubling up to this."""

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ConfigError(
                f"asr.remote.timeout_s must be greater than 0, not {self.timeout_s}", settings=("timeout_s",)
            )
        if not 0 < self.retry_min_s <= self.retry_max_s:
            raise ConfigError(
                "asr.remote.retry_min_s must be greater than 0 and at most retry_max_s",
                settings=("retry_min_s", "retry_max_s"),
            )
        if not self.enabled:
            return
        if not self.url:
            example = "tcp://192.168.1.20:10300" if self.protocol == "wyoming" else "https://192.168.1.20:8000"
            raise ConfigError(f"asr.remote.url is needed when asr.remote is enabled, e.g. {example}", settings=("url",))
        parts = urlsplit(self.url)
        schemes = ("tcp",) if self.protocol == "wyoming" else ("http", "https")
        if parts.scheme not in schemes or not parts.hostname:
            raise ConfigError(
                f"asr.remote.url {self.url!r} must look like {' or '.join(s + '://HOST:PORT' for s in schemes)} "
                f"for protocol {self.protocol}",
                settings=("url",),
            )
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"asr.remote.url {self.url!r} has an invalid port", settings=("url",)) from None
        if port == 0:
            raise ConfigError(f"asr.remote.url {self.url!r} has port 0", settings=("url",))
        if self.protocol == "wyoming" and (self.token_file is not None or self.ca_file is not None):
            raise ConfigError(
                "asr.remote.token_file and ca_file apply to protocol openai only (Wyoming has neither)",
                settings=("token_file", "ca_file"),
            )

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        if parts.port is not None:
            return parts.port
        return {"tcp": WYOMING_DEFAULT_PORT, "https": 443}.get(parts.scheme, 80)

    @property
    def uses_tls(self) -> bool:
        return urlsplit(self.url).scheme == "https"
