"""What a downloader may connect to: schemes, addresses, proxies, and a static host table.

A URL list must not be able to turn a downloader inside a cluster network against that network.
`install(policy)` enforces the policy inside the process (and in processes forked from it), for
urllib, the client img2dataset fetches with (`img2dataset/downloader.py`, `download_image`):

- every name resolution goes through `guarded_getaddrinfo`: hosts in the policy's table resolve
  to their entry (like curl's --resolve; `*` matches every host), and any address that is
  loopback, private, link-local, site-local, reserved, multicast, unspecified or a cloud metadata
  address is refused before a connection is made (loopback and private ranges only when allowed;
  metadata addresses never). An IPv6 address that embeds an IPv4 one is judged by what it embeds
  too (`embedded_ipv4`): IPv4-mapped and IPv4-compatible (RFC 4291 2.5.5), 6to4 (RFC 3056),
  Teredo server and de-obfuscated client (RFC 4380 4), NAT64 well-known and local-use prefixes
  (RFC 6052 2.2, RFC 8215);
- proxies: through a proxy, the connection goes to the proxy and the proxy resolves the URL's host,
  so the check above would only see the proxy. urllib takes proxies from `http_proxy` /
  `https_proxy` (either case; lower case wins; upper-case HTTP_PROXY is ignored under CGI) and skips
  them for hosts in `no_proxy`; it has no ALL_PROXY fallback (curl has), so ALL_PROXY changes
  nothing here: such requests go direct, through the check. Unless the policy allows proxies,
  `check_proxy_environment` refuses a run with a proxy set (one line, exit 2) and `install` uses
  none. With `allow_proxy`, every URL's host is checked before the proxy is asked
  (`target_refusal`): a literal address in any notation a resolver accepts (`2852039166`,
  `0xA9FEA9FE`, `0251.0376.0251.0376`, `127.1`: `parse_host_address`) is judged as it is; a name
  is resolved here and refused unless every address it has is allowed (the proxy picks which one it
  connects to), and refused when it does not resolve here (fail closed); a URL whose host two
  parsers could read differently (userinfo, backslash, whitespace, control characters) is refused.
  The proxy's own address is the user's configuration, not the URL list's: it is exempt from
  the loopback/private rules (never from the metadata rule). What this cannot cover: the proxy
  resolves the name again, and may get another answer (DNS rebinding, split-horizon DNS); a proxy
  that must never reach internal addresses needs its own egress rules as well;
- redirects may only go to http/https URLs (and, through a proxy, are checked like any target).

Non-http(s) URLs are refused before they reach a downloader (`scheme_refusal`).
"""
from __future__ import annotations

import ipaddress
import os
import re
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ticcore.errors import InputError

ALLOWED_SCHEMES = ("http", "https")
# Cloud metadata services: AWS/GCP/Azure/OCI 169.254.169.254, AWS's IPv6 fd00:ec2::254, Alibaba
# 100.100.100.200, Oracle's legacy 192.0.0.192, Azure's WireServer 168.63.129.16 (a public address).
METADATA_ADDRESSES = {ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200",
                                                         "192.0.0.192", "168.63.129.16")}
CGNAT = ipaddress.ip_network("100.64.0.0/10")       # RFC 6598 shared address space
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")    # RFC 1122 3.2.1.3: never a destination (0.0.0.0 reaches localhost on Linux)
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")   # RFC 6052 2.1
NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")           # RFC 4291 2.5.5.1 (deprecated)
# RFC 6052 2.2: where the IPv4 bytes sit for each NAT64 prefix length (byte 8, bits 64-71, is always zero).
# The local-use prefix may be deployed at any length from /48, so each possible place is checked.
RFC6052_IPV4_BYTES = {48: (6, 7, 9, 10), 56: (7, 9, 10, 11), 64: (9, 10, 11, 12), 96: (12, 13, 14, 15)}
BLOCK_MARK = "tic-netguard blocked"
PROXY_SCHEMES = ("http", "https")
# A host that two URL parsers could read differently (the proxy parses the URL again): userinfo,
# backslashes, whitespace and control characters.
_AMBIGUOUS_AUTHORITY = re.compile(r"[@\\\s\x00-\x1f\x7f]")


@dataclass(frozen=True)
class NetPolicy:
    allow_loopback: bool = False
    allow_private: bool = False
    resolve: dict = field(default_factory=dict)  # host -> (ip, port or None); "*" for every host
    allow_proxy: bool = False

    def to_json(self) -> dict:
        return {"allow_loopback": self.allow_loopback, "allow_private": self.allow_private,
                "allow_proxy": self.allow_proxy,
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


def _inet_aton_part(part: str) -> int | None:
    """One part of a numeric IPv4 host as inet_aton(3) reads it: 0x.. hex, 0.. octal, else decimal."""
    try:
        if part[:2].lower() == "0x":
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part[0] == "0":
            return int(part[1:], 8)
        return int(part, 10) if part.isdigit() else None
    except ValueError:
        return None


def parse_host_address(host: str):
    """The address a URL host names literally, or None for a name.

    Covers what resolvers accept besides dotted quads, since glibc's getaddrinfo (and so a proxy)
    reads a numeric host with inet_aton(3): 1 to 4 parts, each decimal, octal (leading 0) or hex
    (0x), the last filling the remaining bytes (`2852039166`, `0xA9FEA9FE`, `0251.0376.0251.0376`,
    `169.254.43518`, `127.1`); IPv6 in brackets, with or without a zone; a trailing dot.
    """
    h = host.strip().rstrip(".")
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    try:
        return ipaddress.ip_address(h.split("%", 1)[0])
    except ValueError:
        pass
    parts = h.split(".")
    if not 1 <= len(parts) <= 4 or not all(parts):
        return None
    values = [_inet_aton_part(p) for p in parts]
    if any(v is None for v in values):
        return None
    *leading, last = values
    if any(v > 255 for v in leading) or last >= 1 << (8 * (5 - len(parts))):
        return None
    value = 0
    for v in leading:
        value = value << 8 | v
    return ipaddress.IPv4Address(value << (8 * (5 - len(parts))) | last)


def embedded_ipv4(addr) -> list:
    """The IPv4 addresses an IPv6 address reaches through a translation or tunnel mechanism."""
    if addr.version != 6:
        return []
    found = []
    if addr.ipv4_mapped:                       # ::ffff:a.b.c.d
        found.append(addr.ipv4_mapped)
    if addr.sixtofour:                         # 2002:AABB:CCDD::/48
        found.append(addr.sixtofour)
    if addr.teredo:                            # 2001:0::/32: (server, client), the client un-obfuscated
        found.extend(addr.teredo)
    if addr in NAT64_WELL_KNOWN or (addr in IPV4_COMPATIBLE and int(addr) > 1):  # not :: or ::1
        found.append(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
    if addr in NAT64_LOCAL_USE:
        packed = addr.packed
        candidates = (ipaddress.IPv4Address(bytes(packed[i] for i in where)) for where in RFC6052_IPV4_BYTES.values())
        # a place holding 0.x.x.x is the zero padding of another prefix length, not a destination
        found.extend(c for c in candidates if c not in THIS_NETWORK)
    return found


def _own_refusal(addr, policy: NetPolicy) -> str | None:
    if addr in METADATA_ADDRESSES:
        return "metadata_address"
    if addr.is_loopback:
        return None if policy.allow_loopback else "loopback_address"
    if addr.is_link_local:
        return "link_local_address"
    if addr.is_unspecified or addr.is_multicast or addr.is_reserved or (addr.version == 4 and addr in THIS_NETWORK):
        return "reserved_address"
    if addr.is_private or (addr.version == 4 and addr in CGNAT) or (addr.version == 6 and addr.is_site_local):
        return None if policy.allow_private else "private_address"
    return None


def address_refusal(ip, policy: NetPolicy) -> str | None:
    """None if a connection to `ip` is allowed, else the reason it is not. An IPv6 address that embeds
    IPv4 addresses is refused when any of them is; mapped, 6to4 and NAT64 well-known addresses are
    otherwise judged by the IPv4 address they reach alone (their own ranges say nothing about it),
    the others (Teredo, IPv4-compatible, local-use NAT64) by their own range as well."""
    addr = ip if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)) else \
        ipaddress.ip_address(str(ip).split("%", 1)[0])
    embedded = embedded_ipv4(addr)
    for inner in embedded:
        reason = _own_refusal(inner, policy)
        if reason:
            return reason
    if embedded and (addr.ipv4_mapped or addr.sixtofour or addr in NAT64_WELL_KNOWN):
        return None
    if addr in NAT64_LOCAL_USE:  # a network-specific translator: where it leads is that network's choice
        return None if policy.allow_private else "private_address"
    return _own_refusal(addr, policy)


_ORIGINAL_GETADDRINFO = socket.getaddrinfo
_POLICY: NetPolicy | None = None
_PROXY_ENDPOINTS: frozenset = frozenset()  # (host, port) of the configured proxies, while installed


def guarded_getaddrinfo(host, port, *args, **kwargs):
    policy = _POLICY or NetPolicy()
    name = host.decode() if isinstance(host, bytes) else host
    target_port = port
    # The proxy the user configured may sit on a loopback or private address; only metadata stays refused.
    is_proxy = name is not None and (str(name).strip("[]").lower(), str(port)) in _PROXY_ENDPOINTS
    if name is not None:
        entry = policy.resolve.get(str(name).lower()) or policy.resolve.get("*")
        is_literal = parse_host_address(str(name)) is not None
        if entry and not is_literal and not is_proxy:
            name, target_port = entry[0], entry[1] or port
    results = _ORIGINAL_GETADDRINFO(name, target_port, *args, **kwargs)
    rules = NetPolicy(allow_loopback=True, allow_private=True) if is_proxy else policy
    allowed, refusals = [], []
    for res in results:
        reason = address_refusal(res[4][0], rules)
        (refusals if reason else allowed).append(reason or res)
    if not allowed:
        raise socket.gaierror(socket.EAI_FAIL, f"{BLOCK_MARK}: {host} -> {refusals[0]}")
    return allowed


def target_refusal(url: str, policy: NetPolicy) -> str | None:
    """None if `url`'s host may be handed to a proxy, else the reason not: the host is judged here,
    since the proxy resolves and connects to it out of this process's sight."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "unparseable_url"
    if not host or _AMBIGUOUS_AUTHORITY.search(parts.netloc):
        return "ambiguous_host"
    literal = parse_host_address(host)
    if literal is not None:
        return address_refusal(literal, policy)
    try:
        infos = _ORIGINAL_GETADDRINFO(host, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return "unresolvable_host"
    reasons = [address_refusal(info[4][0], policy) for info in infos]
    return next((r for r in reasons if r), None) if reasons else "unresolvable_host"


def environment_proxies() -> dict[str, str]:
    """{scheme: proxy URL} for the http(s) proxies urllib takes from the environment."""
    proxies = urllib.request.getproxies()
    return {s: proxies[s] for s in PROXY_SCHEMES if proxies.get(s)}


def check_proxy_environment(policy: NetPolicy) -> None:
    """Refuse a proxy in the environment unless the policy allows proxies (the variable is named, its
    value is not: it may hold credentials)."""
    if policy.allow_proxy and policy.resolve:
        raise InputError("--resolve and --allow-proxy do not combine: through a proxy, the proxy resolves each host")
    if policy.allow_proxy or not environment_proxies():
        return
    names = sorted(n for n, v in os.environ.items() if v and n.lower() in {f"{s}_proxy" for s in PROXY_SCHEMES})
    raise InputError(f"{' and '.join(names) or 'a proxy'} set: a proxy fetches hosts the address guard cannot see; "
                     "unset it, or pass --allow-proxy to check each URL's host here before the proxy is asked")


def _endpoints(proxies: dict[str, str]) -> frozenset:
    out = set()
    for url in proxies.values():
        parts = urlsplit(url if "://" in url else "//" + url)
        if parts.hostname:  # urllib connects with HTTPConnection (80) or, for https URLs, HTTPSConnection (443)
            out.update((parts.hostname.lower(), str(p)) for p in ([parts.port] if parts.port else [80, 443]))
    return frozenset(out)


class _GuardedProxies(urllib.request.ProxyHandler):
    """urllib's ProxyHandler, with each target host checked before the proxy is asked (hosts that
    no_proxy sends direct are checked at connection time, like every direct request)."""

    def __init__(self, proxies: dict[str, str], policy: NetPolicy):
        super().__init__(proxies)
        self.policy = policy

    def proxy_open(self, req, proxy, type):  # noqa: A002 - urllib's signature
        if not (req.host and urllib.request.proxy_bypass(req.host)):
            reason = target_refusal(req.full_url, self.policy)
            if reason:
                raise urllib.error.URLError(f"{BLOCK_MARK}: {req.host} -> {reason}")
        return super().proxy_open(req, proxy, type)


class _SafeRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        reason = scheme_refusal(newurl)
        if reason:
            raise urllib.error.HTTPError(newurl, code, f"{BLOCK_MARK}: redirect -> {reason}", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def install(policy: NetPolicy, handlers: tuple = ()) -> None:
    """Enforce `policy` for every connection this process (and its forks) makes; `handlers` join the
    urllib opener (e.g. the response limits of `benchmarks.imageguard`)."""
    global _POLICY, _PROXY_ENDPOINTS
    proxies = environment_proxies() if policy.allow_proxy else {}
    _POLICY = policy
    _PROXY_ENDPOINTS = _endpoints(proxies)
    socket.getaddrinfo = guarded_getaddrinfo
    proxy_handler = _GuardedProxies(proxies, policy) if proxies else urllib.request.ProxyHandler({})
    urllib.request.install_opener(urllib.request.build_opener(proxy_handler, _SafeRedirects(), *handlers))


def uninstall() -> None:
    global _POLICY, _PROXY_ENDPOINTS
    _POLICY = None
    _PROXY_ENDPOINTS = frozenset()
    socket.getaddrinfo = _ORIGINAL_GETADDRINFO
    urllib.request.install_opener(None)
