"""What a downloader may connect to: schemes, addresses, and a static host table.

A URL list must not be able to turn a downloader inside a cluster network against that network.
`install(policy)` enforces the policy inside the process (and in processes forked from it):

- every name resolution goes through `guarded_getaddrinfo`: hosts in the policy's table resolve
  to their entry (like curl's --resolve; `*` matches every host), and any address that is
  loopback, private, link-local, reserved, multicast, unspecified or a cloud metadata address is
  refused before a connection is made (loopback and private ranges only when allowed;
  metadata addresses never);
- redirects may only go to http/https URLs.

Non-http(s) URLs are refused before they reach a downloader (`scheme_refusal`).
"""
from __future__ import annotations

import ipaddress
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ticcore.errors import InputError

ALLOWED_SCHEMES = ("http", "https")
METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
                      ipaddress.ip_address("100.100.100.200")}
BLOCK_MARK = "tic-netguard blocked"


@dataclass(frozen=True)
class NetPolicy:
    allow_loopback: bool = False
    allow_private: bool = False
    resolve: dict = field(default_factory=dict)  # host -> (ip, port or None); "*" for every host

    def to_json(self) -> dict:
        return {"allow_loopback": self.allow_loopback, "allow_private": self.allow_private,
                "resolve": {h: [ip, port] for h, (ip, port) in self.resolve.items()}}


def parse_resolve(entries: list[str]) -> dict:
    """`HOST=IP[:PORT]` entries (HOST may be `*`)."""
    out = {}
    for entry in entries:
        host, sep, target = entry.partition("=")
        if not sep or not host or not target:
            raise InputError(f"--resolve expects HOST=IP[:PORT], got {entry!r}")
        ip, _, port = target.rpartition(":") if target.count(":") == 1 else (target, "", "")
        try:
            ipaddress.ip_address(ip)
            out[host.lower()] = (ip, int(port) if port else None)
        except ValueError as exc:  # a bad address or port: the standard library's message, as a user error
            raise InputError(str(exc)) from None
    return out


def scheme_refusal(url: str) -> str | None:
    """None if the URL may be fetched, else the reason it may not."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return "unparseable_url"
    if scheme not in ALLOWED_SCHEMES:
        return f"scheme_not_allowed:{scheme or 'none'}"
    return None


def address_refusal(ip: str, policy: NetPolicy) -> str | None:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if getattr(addr, "ipv4_mapped", None):
        addr = addr.ipv4_mapped
    if addr in METADATA_ADDRESSES:
        return "metadata_address"
    if addr.is_loopback:
        return None if policy.allow_loopback else "loopback_address"
    if addr.is_link_local:
        return "link_local_address"
    if addr.is_unspecified or addr.is_multicast or addr.is_reserved:
        return "reserved_address"
    if addr.is_private or (addr.version == 4 and addr in ipaddress.ip_network("100.64.0.0/10")):
        return None if policy.allow_private else "private_address"
    return None


_ORIGINAL_GETADDRINFO = socket.getaddrinfo
_POLICY: NetPolicy | None = None


def guarded_getaddrinfo(host, port, *args, **kwargs):
    policy = _POLICY or NetPolicy()
    name = host.decode() if isinstance(host, bytes) else host
    target_port = port
    if name is not None:
        entry = policy.resolve.get(str(name).lower()) or policy.resolve.get("*")
        try:
            ipaddress.ip_address(str(name).strip("[]"))
            is_literal = True
        except ValueError:
            is_literal = False
        if entry and not is_literal:
            name, target_port = entry[0], entry[1] or port
    results = _ORIGINAL_GETADDRINFO(name, target_port, *args, **kwargs)
    allowed, refusals = [], []
    for res in results:
        reason = address_refusal(res[4][0], policy)
        (refusals if reason else allowed).append(reason or res)
    if not allowed:
        raise socket.gaierror(socket.EAI_FAIL, f"{BLOCK_MARK}: {host} -> {refusals[0]}")
    return allowed


class _SafeRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        reason = scheme_refusal(newurl)
        if reason:
            raise urllib.error.HTTPError(newurl, code, f"{BLOCK_MARK}: redirect -> {reason}", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def install(policy: NetPolicy) -> None:
    """Enforce `policy` for every connection this process (and its forks) makes."""
    global _POLICY
    _POLICY = policy
    socket.getaddrinfo = guarded_getaddrinfo
    urllib.request.install_opener(urllib.request.build_opener(_SafeRedirects()))


def uninstall() -> None:
    global _POLICY
    _POLICY = None
    socket.getaddrinfo = _ORIGINAL_GETADDRINFO
    urllib.request.install_opener(None)
