"""Which IP addresses are not globally reachable, from the IANA special-purpose address registries.

Python's `ipaddress.is_global` lags the registries (3fff::/20, 5f00::/16, 64:ff9b:1::/48 and 192.88.99.0/24
pass it on 3.11), so the egress policy asks this table instead: every entry of
https://www.iana.org/assignments/iana-ipv4-special-registry and .../iana-ipv6-special-registry, plus the
multicast blocks, with "Globally Reachable" True for the few exceptions nested in refused blocks.
The most specific entry decides; an address no entry covers is refused when it lies outside IPv4
unicast or IPv6 global unicast (2000::/3).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class SpecialRange:
    """One registry entry: its block, its registry name, what to call such an address, reachability."""

    network: IPNetwork
    name: str
    kind: str  # "a loopback address", as a refusal says it
    reachable: bool = False  # the registry's "Globally Reachable"; N/A counts as False

    def describe(self) -> str:
        return f"{self.kind} ({self.network} {self.name})"


_S = "a special-purpose address"
_DOC = "a documentation address"
_TABLE: tuple[tuple[str, str, str, bool], ...] = (
    # IPv4 special-purpose registry
    ("0.0.0.0/8", '"This network"', "a 'this network' address", False),
    ("0.0.0.0/32", '"This host on this network"', "an unspecified address", False),
    ("10.0.0.0/8", "Private-Use", "a private address", False),
    ("100.64.0.0/10", "Shared Address Space", "a shared (carrier-grade NAT) address", False),
    ("127.0.0.0/8", "Loopback", "a loopback address", False),
    ("169.254.0.0/16", "Link Local", "a link-local address", False),
    ("172.16.0.0/12", "Private-Use", "a private address", False),
    ("192.0.0.0/24", "IETF Protocol Assignments", _S, False),
    ("192.0.0.0/29", "IPv4 Service Continuity Prefix", _S, False),
    ("192.0.0.8/32", "IPv4 dummy address", _S, False),
    ("192.0.0.9/32", "Port Control Protocol Anycast", _S, True),
    ("192.0.0.10/32", "Traversal Using Relays around NAT Anycast", _S, True),
    ("192.0.0.170/32", "NAT64/DNS64 Discovery", _S, False),
    ("192.0.0.171/32", "NAT64/DNS64 Discovery", _S, False),
    ("192.0.2.0/24", "Documentation (TEST-NET-1)", _DOC, False),
    ("192.31.196.0/24", "AS112-v4", _S, True),
    ("192.52.193.0/24", "AMT", _S, True),
    # Deprecated (RFC 7526); the registry's N/A. 192.88.99.2 (6a44 relays) goes with its block.
    ("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", "a deprecated relay address", False),
    ("192.168.0.0/16", "Private-Use", "a private address", False),
    ("192.175.48.0/24", "Direct Delegation AS112 Service", _S, True),
    ("198.18.0.0/15", "Benchmarking", "a benchmarking address", False),
    ("198.51.100.0/24", "Documentation (TEST-NET-2)", _DOC, False),
    ("203.0.113.0/24", "Documentation (TEST-NET-3)", _DOC, False),
    ("224.0.0.0/4", "Multicast", "a multicast address", False),
    ("240.0.0.0/4", "Reserved", "a reserved address", False),
    ("255.255.255.255/32", "Limited Broadcast", "a broadcast address", False),
    # IPv6 special-purpose registry (::ffff:0:0/96, 64:ff9b::/96 and 2002::/16 lead to an IPv4
    # address and are judged by it, see embedded_ipv4)
    ("::1/128", "Loopback Address", "a loopback address", False),
    ("::/128", "Unspecified Address", "an unspecified address", False),
    ("::ffff:0:0/96", "IPv4-mapped Address", _S, False),
    ("64:ff9b::/96", "IPv4-IPv6 Translat.", _S, True),
    ("64:ff9b:1::/48", "IPv4-IPv6 Translat. (local-use)", "a private address", False),
    ("100::/64", "Discard-Only Address Block", _S, False),
    ("100:0:0:1::/64", "Dummy IPv6 Prefix", _S, False),
    ("2001::/23", "IETF Protocol Assignments", _S, False),
    ("2001::/32", "TEREDO", "a Teredo tunnel address", False),
    ("2001:1::1/128", "Port Control Protocol Anycast", _S, True),
    ("2001:1::2/128", "Traversal Using Relays around NAT Anycast", _S, True),
    ("2001:1::3/128", "DNS-SD Service Registration Protocol Anycast", _S, True),
    ("2001:2::/48", "Benchmarking", "a benchmarking address", False),
    ("2001:3::/32", "AMT", _S, True),
    ("2001:4:112::/48", "AS112-v6", _S, True),
    ("2001:10::/28", "Deprecated (previously ORCHID)", _S, False),
    ("2001:20::/28", "ORCHIDv2", _S, True),
    ("2001:30::/28", "Drone Remote ID Protocol Entity Tags (DETs) Prefix", _S, True),
    ("2001:db8::/32", "Documentation", _DOC, False),
    ("2002::/16", "6to4", _S, False),
    ("2620:4f:8000::/48", "Direct Delegation AS112 Service", _S, True),
    ("3fff::/20", "Documentation", _DOC, False),
    ("5f00::/16", "Segment Routing (SRv6) SIDs", _S, False),
    ("fc00::/7", "Unique-Local", "a private address", False),
    ("fe80::/10", "Link-Local Unicast", "a link-local address", False),
    ("fec0::/10", "Site-Local (deprecated, RFC 3879)", "a private address", False),
    ("ff00::/8", "Multicast", "a multicast address", False),
)
SPECIAL_RANGES: tuple[SpecialRange, ...] = tuple(
    SpecialRange(ipaddress.ip_network(cidr), name, kind, reachable) for cidr, name, kind, reachable in _TABLE
)
_IPV6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIXTOFOUR = ipaddress.ip_network("2002::/16")


@lru_cache(maxsize=4096)
def special_range(address: IPAddress) -> SpecialRange | None:
    """The most specific registry entry that holds address, or None."""
    found = [entry for entry in SPECIAL_RANGES if address in entry.network]
    return max(found, key=lambda entry: entry.network.prefixlen, default=None)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, NAT64 (64:ff9b::/96) or 6to4 IPv6 address leads to."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address in _MAPPED or address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIXTOFOUR:
        return address.sixtofour
    return None


def why_not_global(address: IPAddress) -> str | None:
    """Say why address is not globally reachable, naming its range; None when it is.

    An IPv6 address that leads to an IPv4 address is judged by that IPv4 address.
    """
    target = embedded_ipv4(address) or address
    entry = special_range(target)
    if entry is not None:
        return None if entry.reachable else entry.describe()
    if isinstance(target, ipaddress.IPv6Address) and target not in _IPV6_GLOBAL_UNICAST:
        return f"an unallocated address (outside {_IPV6_GLOBAL_UNICAST}, the global unicast range)"
    return None
