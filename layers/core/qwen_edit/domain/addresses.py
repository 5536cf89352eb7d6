"""Which IP addresses count as public: the SSRF guard for anything we connect to on a caller's
behalf (webhook targets, and later image URLs).

Why our own tables: `ipaddress`'s `is_global`/`is_private` have changed between Python patch
releases, and they judge IPv6 forms that carry an IPv4 address (NAT64 `64:ff9b::a9fe:a9fe`,
6to4, Teredo, compatible, mapped, translated) by the IPv6 prefix, so the metadata address
169.254.169.254 could pass in disguise. Here such forms are judged by the IPv4 they carry.

Decisions beyond the registries:
- Teredo (2001::/32) is public only when BOTH the server and the client IPv4 are public;
  the rest of 2001::/23 (IETF protocol assignments, including its few globally reachable
  anycast entries such as 2001:1::1 and 2001:4:112::/48) is never public.
- The whole of 192.0.0.0/24 is refused, including 192.0.0.9 and 192.0.0.10, which the
  registry marks globally reachable (anycast services, never a webhook receiver).
- An IPv6 address with a zone (`fe80::1%eth0`, or any `...%zone`) is never public: a zone
  ties the address to a local interface.
- `::` and `::1` carry no IPv4 (they are the unspecified and loopback addresses, not
  IPv4-compatible ones); they are not public.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

IPV4_BITS = 0xFFFFFFFF

# IANA IPv4 Special-Purpose Address Registry
# https://www.iana.org/assignments/iana-ipv4-special-registry/ (plus multicast and class E).
IPV4_NOT_PUBLIC = tuple(
    IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # private use
        "100.64.0.0/10",  # shared address space (CGNAT)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local (cloud metadata 169.254.169.254)
        "172.16.0.0/12",  # private use
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation (TEST-NET-1)
        "192.31.196.0/24",  # AS112-v4
        "192.52.193.0/24",  # AMT
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",  # private use
        "192.175.48.0/24",  # direct delegation AS112 service
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation (TEST-NET-2)
        "203.0.113.0/24",  # documentation (TEST-NET-3)
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, including limited broadcast 255.255.255.255
    )
)

# IANA IPv6 Special-Purpose Address Registry
# https://www.iana.org/assignments/iana-ipv6-special-registry/
# Only 2000::/3 (global unicast) can be public; these are the exceptions inside it. The
# registry's 2002::/16 (6to4) and 2001::/32 (Teredo) never reach this table: they carry IPv4
# and are judged by it. Its 5f00::/16 (SRv6 SIDs) lies outside 2000::/3 already.
GLOBAL_UNICAST = IPv6Network("2000::/3")
IPV6_NOT_PUBLIC = tuple(
    IPv6Network(n)
    for n in (
        "2001::/23",  # IETF protocol assignments
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "2620:4f:8000::/48",  # direct delegation AS112 service
    )
)

# Forms carrying one IPv4 address in their last 32 bits, judged by it (64:ff9b:1::/48, the
# local-use NAT64 prefix, is not among them: it is never public).
LOW_32_FORMS = tuple(
    IPv6Network(n)
    for n in (
        "64:ff9b::/96",  # NAT64 well-known prefix (RFC 6052)
        "::ffff:0:0/96",  # IPv4-mapped
        "::ffff:0:0:0/96",  # IPv4-translated (RFC 2765)
        "::/96",  # IPv4-compatible (deprecated), except :: and ::1
    )
)
SIX_TO_FOUR = IPv6Network("2002::/16")  # IPv4 in bits 16-48
TEREDO = IPv6Network("2001::/32")  # server IPv4 in bits 32-64, client IPv4 inverted last


def is_public(address: str | IPv4Address | IPv6Address) -> bool:
    """True only for a globally routable unicast address; embedded IPv4 forms judged by the
    IPv4 inside. Text that is not an IP address is not public."""
    ip = _parse(address)
    if isinstance(ip, IPv4Address):
        return _public_ipv4(ip)
    if isinstance(ip, IPv6Address):
        return _public_ipv6(ip)
    return False


def first_hidden(host: str, addresses: list[str]) -> str | None:
    """Why `host` must not be reached: the first of its addresses that is not public, in words;
    None when every address is public. Webhook targets and image URLs share this judgement."""
    hidden = next((address for address in addresses if not is_public(address)), None)
    if hidden is None:
        return None
    return (
        f"{host} resolves to {hidden}, which is not a public address (loopback, private, "
        "link-local, CGNAT and metadata ranges are refused)"
    )


def all_loopback(addresses: list[str]) -> bool:
    """True when every address is a loopback one (the local stack's own receivers and files)."""
    return bool(addresses) and all(_loopback(address) for address in addresses)


def _loopback(address: str) -> bool:
    try:
        return ip_address(address).is_loopback
    except ValueError:
        return False


def embedded_ipv4(address: IPv6Address) -> tuple[IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries (NAT64, 6to4, Teredo server+client,
    compatible, mapped, translated); () when none."""
    value = int(address)
    if address in TEREDO:
        return (_ipv4_bits(value, 64), IPv4Address(~value & IPV4_BITS))
    if address in SIX_TO_FOUR:
        return (_ipv4_bits(value, 80),)
    if value > 1 and any(address in form for form in LOW_32_FORMS):  # not :: or ::1
        return (_ipv4_bits(value, 0),)
    return ()


def _parse(address: str | IPv4Address | IPv6Address) -> IPv4Address | IPv6Address | None:
    if isinstance(address, (IPv4Address, IPv6Address)):
        return address
    try:
        return ip_address(address)
    except ValueError:
        return None


def _ipv4_bits(value: int, shift: int) -> IPv4Address:
    """The IPv4 address in the 32 bits of `value` that start `shift` bits from the right."""
    return IPv4Address((value >> shift) & IPV4_BITS)


def _public_ipv4(ip: IPv4Address) -> bool:
    return not any(ip in network for network in IPV4_NOT_PUBLIC)


def _public_ipv6(ip: IPv6Address) -> bool:
    if ip.scope_id is not None:
        return False
    carried = embedded_ipv4(ip)
    if carried:
        return all(_public_ipv4(v4) for v4 in carried)
    return ip in GLOBAL_UNICAST and not any(ip in network for network in IPV6_NOT_PUBLIC)
