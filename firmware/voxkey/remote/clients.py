"""The two speech-server protocols, each as one blocking call: 16 kHz mono PCM in, text out.

* Wyoming (``wyoming-faster-whisper`` and the rest of the Home Assistant
  ecosystem) through the ``wyoming`` package's own client: ``Transcribe``,
  ``AudioStart``, ``AudioChunk``..., ``AudioStop``, answered by ``Transcript``.
  The server answers once per audio stream and then closes the connection,
  so every phrase is one connection (on a LAN that costs about a millisecond).
* OpenAI-compatible ``POST /v1/audio/transcriptions`` (speaches, LocalAI,
  whisper.cpp's server with that path): a multipart form with a WAV file,
  over http or https. https always checks the certificate (the system's CAs,
  or ``ca_file`` for a self-signed LAN server); a bearer token is read from
  ``token_file`` and sent only in the header, never logged or put in errors.

Every failure becomes a :class:`~voxkey.errors.RemoteAsrError` whose message
names the server and what went wrong, for the one log line the fallback writes.
``timeout_s`` bounds the whole call, so a server that accepts and never
answers does not hold a thread for longer than that.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import ssl
import uuid
import wave
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

from voxkey.audio import SAMPLE_RATE
from voxkey.errors import RemoteAsrError
from voxkey.remote.settings import RemoteSettings

_CHUNK_BYTES = 2 * SAMPLE_RATE // 10  # 100 ms of audio per AudioChunk
T = TypeVar("T")
MAX_ANSWER_BYTES = 1 << 20  # no phrase's text is a megabyte: more is a broken server, not speech


class SpeechClient(Protocol):
    """One phrase to a speech server and its text back."""

    @property
    def where(self) -> str:
        """The server, for messages (never carries a token)."""
        ...

    def transcribe(self, pcm: bytes, language: str, prompt: str, timeout_s: float) -> str: ...

    def probe(self, timeout_s: float) -> None:
        """Raise :class:`RemoteAsrError` unless the server answers the protocol (cheap: no transcription)."""
        ...


def client_for(settings: RemoteSettings) -> SpeechClient:
    if settings.protocol == "wyoming":
        return WyomingClient(settings)
    return OpenAiClient(settings)


class WyomingClient:
    def __init__(self, settings: RemoteSettings) -> None:
        self.settings = settings
        self.host = settings.host
        self.port = settings.port

    @property
    def where(self) -> str:
        return f"wyoming server {self.host}:{self.port}"

    def transcribe(self, pcm: bytes, language: str, prompt: str, timeout_s: float) -> str:
        return self._run(self._transcribe(pcm, language), timeout_s)

    def _run(self, call: Coroutine[Any, Any, T], timeout_s: float) -> T:
        try:
            return asyncio.run(asyncio.wait_for(call, timeout_s))
        except TimeoutError:
            raise RemoteAsrError(f"{self.where} gave no transcript within {timeout_s:.1f} s") from None
        except RemoteAsrError:
            raise
        except OSError as exc:
            raise RemoteAsrError(f"{self.where}: {_os_reason(exc)}") from None
        except Exception as exc:  # the wyoming reader raises json/unicode/value errors for a garbled stream
            raise RemoteAsrError(f"{self.where} sent something that is not Wyoming: {type(exc).__name__}") from None

    def probe(self, timeout_s: float) -> None:
        self._run(self._describe(), timeout_s)

    async def _describe(self) -> None:
        from wyoming.client import AsyncTcpClient
        from wyoming.info import Describe, Info

        client = AsyncTcpClient(self.host, self.port)
        await client.connect()
        try:
            await client.write_event(Describe().event())
            while True:
                event = await client.read_event()
                if event is None:
                    raise RemoteAsrError(f"{self.where} closed the connection without describing itself")
                if Info.is_type(event.type):
                    return
        finally:
            await client.disconnect()

    async def _transcribe(self, pcm: bytes, language: str) -> str:
        from wyoming.asr import Transcribe, Transcript
        from wyoming.audio import AudioChunk, AudioStart, AudioStop
        from wyoming.client import AsyncTcpClient

        client = AsyncTcpClient(self.host, self.port)
        await client.connect()
        try:
            await client.write_event(Transcribe(name=self.settings.model or None, language=language or None).event())
            await client.write_event(AudioStart(rate=SAMPLE_RATE, width=2, channels=1).event())
            for start in range(0, len(pcm), _CHUNK_BYTES):
                chunk = pcm[start : start + _CHUNK_BYTES]
                await client.write_event(AudioChunk(rate=SAMPLE_RATE, width=2, channels=1, audio=chunk).event())
            await client.write_event(AudioStop().event())
            while True:
                event = await client.read_event()
                if event is None:
                    raise RemoteAsrError(f"{self.where} ended the exchange without a Wyoming transcript")
                if Transcript.is_type(event.type):
                    text = Transcript.from_event(event).text
                    if not isinstance(text, str):
                        raise RemoteAsrError(f"{self.where} sent a transcript without text")
                    return text
        finally:
            await client.disconnect()


class OpenAiClient:
    def __init__(self, settings: RemoteSettings) -> None:
        self.settings = settings
        self.host = settings.host
        self.port = settings.port
        prefix = settings.url.split("://", 1)[1].partition("/")[2].strip("/")
        self.path = f"/{prefix}/v1/audio/transcriptions" if prefix else "/v1/audio/transcriptions"
        self._token = _read_token(settings)
        self._tls: ssl.SSLContext | None = None
        if settings.uses_tls:
            # create_default_context: CERT_REQUIRED and check_hostname; ca_file adds a LAN server's own CA.
            self._tls = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)

    @property
    def where(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"speech server {scheme}://{self.host}:{self.port}"

    def transcribe(self, pcm: bytes, language: str, prompt: str, timeout_s: float) -> str:
        fields = {"model": self.settings.model, "language": language, "prompt": prompt, "response_format": "json"}
        body, content_type = _multipart({k: v for k, v in fields.items() if v}, _wav(pcm))
        headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        status, reason, answer = self._request("POST", self.path, body, headers, timeout_s)
        if status != 200:
            raise RemoteAsrError(f"{self.where} answered HTTP {status} {reason}")
        if len(answer) > MAX_ANSWER_BYTES:
            raise RemoteAsrError(f"{self.where} sent more than {MAX_ANSWER_BYTES} bytes for one phrase")
        try:
            text = json.loads(answer)["text"]
        except (ValueError, KeyError, TypeError):
            raise RemoteAsrError(f"{self.where} answered without a JSON text field") from None
        if not isinstance(text, str):
            raise RemoteAsrError(f"{self.where} answered without a JSON text field")
        return text

    def probe(self, timeout_s: float) -> None:
        """Any HTTP answer but a refused token counts: servers differ in what else they offer (GET /v1/models)."""
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        status, reason, _ = self._request(
            "GET", self.path.removesuffix("audio/transcriptions") + "models", b"", headers, timeout_s
        )
        if status >= 500:
            raise RemoteAsrError(f"{self.where} answered HTTP {status} {reason}")

    def _request(
        self, method: str, path: str, body: bytes, headers: dict[str, str], timeout_s: float
    ) -> tuple[int, str, bytes]:
        connection: http.client.HTTPConnection
        if self._tls is not None:
            connection = http.client.HTTPSConnection(self.host, self.port, timeout=timeout_s, context=self._tls)
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            answer = response.read(MAX_ANSWER_BYTES + 1)
        except ssl.SSLCertVerificationError as exc:
            raise RemoteAsrError(f"{self.where}: certificate not trusted ({exc.verify_message})") from None
        except TimeoutError:
            raise RemoteAsrError(f"{self.where} gave no transcript within {timeout_s:.1f} s") from None
        except OSError as exc:
            raise RemoteAsrError(f"{self.where}: {_os_reason(exc)}") from None
        except http.client.HTTPException as exc:
            raise RemoteAsrError(f"{self.where} broke the HTTP exchange ({type(exc).__name__})") from None
        finally:
            connection.close()
        if response.status in (401, 403):
            raise RemoteAsrError(
                f"{self.where} refused the token (HTTP {response.status}): check asr.remote.token_file"
            )
        return response.status, response.reason, answer


def _read_token(settings: RemoteSettings) -> str:
    if settings.token_file is None:
        return ""
    try:
        return settings.token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise RemoteAsrError(
            f"cannot read asr.remote.token_file {settings.token_file}: {exc.strerror}; "
            "it must be readable by the voxkey user"
        ) from None


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not trusted ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running, on that port?)"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "connection dropped by the server"
    return exc.strerror or type(exc).__name__


def _wav(pcm: bytes) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm)
    return out.getvalue()


def _multipart(fields: dict[str, str], wav: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="phrase.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n".encode()
        + wav
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
