"""Where the audio goes: is the server on the local network, is the link encrypted, what systemd must allow.

``voxkey doctor`` uses :func:`privacy_findings` and :func:`reachability`; the
hardened unit (``systemd/voxkey.service``) allows no IP at all, so turning
``asr.remote`` on needs the drop-in from :func:`systemd_dropin`, which opens
IPv4/IPv6 sockets and exactly the server's addresses, nothing else.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from voxkey.errors import RemoteAsrError
from voxkey.remote.settings import RemoteSettings

DROPIN_PATH = "/etc/systemd/system/voxkey.service.d/remote.conf"


@dataclass(frozen=True)
class Finding:
    ok: bool
    detail: str
    fix: str = ""


def addresses(host: str) -> list[str]:
    """The IP addresses ``host`` stands for (a literal address stands for itself); [] if it does not resolve."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})


def is_local(address: str) -> bool:
    """Loopback, RFC 1918 / unique-local, or link-local: addresses that do not leave the home network."""
    ip = ipaddress.ip_address(address)
    return ip.is_loopback or ip.is_link_local or (ip.is_private and not ip.is_global)


def privacy_findings(settings: RemoteSettings) -> Finding:
    """Whether the audio stays on the local network and is encrypted when it can be."""
    where = f"audio goes to {settings.url}"
    found = addresses(settings.host)
    if not found:
        return Finding(False, f"{where}, but {settings.host} does not resolve", "use the server's IP address in url")
    outside = [a for a in found if not is_local(a)]
    if outside:
        return Finding(
            False,
            f"{where} ({', '.join(outside)}): not on the local network",
            "point asr.remote.url at a server on your LAN, or turn asr.remote off",
        )
    if (
        settings.protocol == "openai"
        and not settings.uses_tls
        and not all(ipaddress.ip_address(a).is_loopback for a in found)
    ):
        return Finding(
            False,
            f"{where} ({', '.join(found)}) unencrypted: anyone on the network can listen",
            "serve the endpoint over https (asr.remote.ca_file for your own CA)",
        )
    how = (
        "over TLS"
        if settings.uses_tls
        else "unencrypted (Wyoming has no TLS)"
        if settings.protocol == "wyoming"
        else ""
    )
    return Finding(True, f"{where} ({', '.join(found)}, local network) {how}".rstrip())


def reachability(probe: Callable[[float], None], timeout_s: float) -> Finding:
    """Probe once, in this thread; how long the server took to answer."""
    started = time.monotonic()
    try:
        probe(timeout_s)
    except RemoteAsrError as exc:
        return Finding(False, f"{exc}; dictation uses the on-device model", "start the server or fix asr.remote.url")
    return Finding(True, f"answers in {time.monotonic() - started:.2f} s; dictation goes to it")


def systemd_dropin(settings: RemoteSettings) -> str:
    """The unit drop-in that lets the hardened service reach this server and nothing else."""
    found = addresses(settings.host)
    if not found:
        raise RemoteAsrError(f"{settings.host} does not resolve; put the server's IP address in asr.remote.url")
    return (
        "# Written by `voxkey remote systemd`: asr.remote is on, so the daemon may reach the speech server\n"
        f"# {settings.url} and nothing else (voxkey.service denies all IP otherwise). Re-run after changing\n"
        "# asr.remote.url; remove this file (and systemctl daemon-reload) when turning asr.remote off.\n"
        "[Service]\n"
        "RestrictAddressFamilies=AF_INET AF_INET6\n"
        f"IPAddressAllow={' '.join(found)}\n"
    )
