"""The SSRF guard's notion of a public address: the IANA tables, IPv6 forms carrying an IPv4
address judged by that IPv4 (NAT64, 6to4, Teredo, compatible, mapped, translated), and
check_target refusing the NAT64 form of the metadata address. Pure computation: no sockets."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwen_edit.app import webhooks
from qwen_edit.domain.addresses import IPV4_NOT_PUBLIC, IPV6_NOT_PUBLIC, embedded_ipv4, is_public

# No example database on disk: these tests leave nothing behind in the tree.
quick = settings(database=None, deadline=None)

METADATA = IPv4Address("169.254.169.254")
TEREDO_SERVER = IPv4Address("65.54.227.120")


def teredo(server: IPv4Address, client: IPv4Address) -> IPv6Address:
    """A Teredo address (flags 0x8000, port 0x63bf): server in bits 32-64, client inverted."""
    return IPv6Address(
        (0x20010000 << 96) | (int(server) << 64) | (0x800063BF << 32) | (~int(client) & 0xFFFFFFFF)
    )


# Each IPv6 form that carries one IPv4 address, built from that address.
FORMS: dict[str, Callable[[IPv4Address], IPv6Address]] = {
    "nat64": lambda x: IPv6Address((0x64FF9B << 96) | int(x)),
    "6to4": lambda x: IPv6Address((0x2002 << 112) | (int(x) << 80) | 1),
    "mapped": lambda x: IPv6Address((0xFFFF << 32) | int(x)),
    "translated": lambda x: IPv6Address((0xFFFF << 48) | int(x)),
    "compatible": lambda x: IPv6Address(int(x)),
}


@pytest.mark.parametrize(
    ("address", "public"),
    [
        # IPv4 public
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("93.184.216.34", True),
        ("192.0.1.1", True),
        ("100.128.0.1", True),
        ("223.255.255.255", True),
        # IPv4 not public
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("198.18.0.1", False),
        ("192.0.0.170", False),
        ("192.0.0.9", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("224.0.0.1", False),
        ("10.0.0.1", False),
        ("172.31.255.255", False),
        ("192.168.1.1", False),
        ("127.0.0.1", False),
        ("192.0.2.1", False),
        ("198.51.100.7", False),
        ("203.0.113.9", False),
        ("192.88.99.1", False),
        ("192.31.196.1", False),
        ("192.52.193.1", False),
        ("192.175.48.1", False),
        ("240.0.0.1", False),
        # NAT64 (64:ff9b::/96) judged by the IPv4 inside; local-use NAT64 never public
        ("64:ff9b::a9fe:a9fe", False),
        ("64:ff9b::169.254.169.254", False),
        ("64:ff9b::808:808", True),
        ("64:ff9b:1::808:808", False),
        # 6to4 (2002::/16)
        ("2002:a9fe:a9fe::1", False),
        ("2002:0a00:0001::", False),
        ("2002:0808:0808::1", True),
        # IPv4-compatible, mapped, translated
        ("::a9fe:a9fe", False),
        ("::808:808", True),
        ("::ffff:169.254.169.254", False),
        ("::ffff:8.8.8.8", True),
        ("::ffff:0:a9fe:a9fe", False),
        ("::ffff:0:808:808", True),
        # Teredo (2001::/32): public only when server and client are both public
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),  # client 10.0.0.1
        ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", True),  # client 8.8.8.8
        ("2001:0:a00:1:8000:63bf:f7f7:f7f7", False),  # server 10.0.0.1
        # IPv6 not public
        ("fd00::1", False),
        ("fc00::1", False),
        ("fd00:ec2::254", False),
        ("fe80::1%eth0", False),
        ("fe80::1", False),
        ("ff02::1", False),
        ("ff0e::1", False),
        ("::1", False),
        ("::", False),
        ("2001:db8::1", False),
        ("3fff::1", False),
        ("100::1", False),
        ("5f00::1", False),
        ("2620:4f:8000::1", False),
        ("2001:1::1", False),
        ("2001:4:112::1", False),
        ("2001:20::1", False),
        ("4000::1", False),
        # IPv6 public
        ("2606:4700:4700::1111", True),
        ("2001:4860:4860::8888", True),
        ("2620:4f:8001::1", True),
        ("2606:4700::1%eth0", False),  # a zone ties it to an interface
        # not IP addresses at all
        ("not an ip", False),
        ("", False),
        ("1.2.3", False),
        ("010.0.0.1", False),
        ("8.8.8.8/32", False),
        ("[::1]", False),
        ("::ffff:8.8.8.8.8", False),
    ],
)
def test_is_public_table(address: str, public: bool) -> None:
    assert is_public(address) is public


def test_address_objects_are_judged_like_their_text() -> None:
    assert is_public(IPv4Address("8.8.8.8"))
    assert not is_public(IPv6Address("64:ff9b::a9fe:a9fe"))


@pytest.mark.parametrize(
    ("address", "carried"),
    [
        ("64:ff9b::a9fe:a9fe", ("169.254.169.254",)),
        ("2002:a9fe:a9fe::1", ("169.254.169.254",)),
        ("::ffff:0:a9fe:a9fe", ("169.254.169.254",)),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", ("65.54.227.120", "10.0.0.1")),
        ("::2", ("0.0.0.2",)),
        ("::", ()),
        ("::1", ()),
        ("64:ff9b:1::a9fe:a9fe", ()),
        ("2606:4700:4700::1111", ()),
    ],
)
def test_embedded_ipv4(address: str, carried: tuple[str, ...]) -> None:
    assert embedded_ipv4(IPv6Address(address)) == tuple(IPv4Address(a) for a in carried)


ipv4s = st.integers(0, 2**32 - 1).map(IPv4Address)


@quick
@given(x=ipv4s, form=st.sampled_from(sorted(FORMS)))
def test_forms_carrying_ipv4_are_public_exactly_when_it_is(x: IPv4Address, form: str) -> None:
    # No exceptions: the compatible form of 0.0.0.0 and 0.0.0.1 is :: and ::1, which carry
    # no IPv4 and are not public, and 0.0.0.0/8 is not public either.
    ipv6 = FORMS[form](x)
    assert is_public(ipv6) is is_public(x)
    assert is_public(str(ipv6)) is is_public(str(x))
    if int(x) > 1 or form != "compatible":
        assert embedded_ipv4(ipv6) == (x,)


@quick
@given(server=ipv4s, client=ipv4s)
def test_teredo_is_public_only_when_server_and_client_are(
    server: IPv4Address, client: IPv4Address
) -> None:
    address = teredo(server, client)
    assert embedded_ipv4(address) == (server, client)
    assert is_public(address) is (is_public(server) and is_public(client))


@quick
@given(x=ipv4s)
def test_teredo_with_the_metadata_address_anywhere_is_refused(x: IPv4Address) -> None:
    assert not is_public(teredo(METADATA, x))
    assert not is_public(teredo(x, METADATA))


@quick
@given(network=st.sampled_from(IPV4_NOT_PUBLIC + IPV6_NOT_PUBLIC), offset=st.integers(0))
def test_nothing_inside_the_tables_is_public(
    network: IPv4Network | IPv6Network, offset: int
) -> None:
    assert not is_public(network[offset % network.num_addresses])


@quick
@given(st.text())
def test_is_public_never_raises_for_text(text: str) -> None:
    assert is_public(text) in (True, False)


@quick
@given(st.text(alphabet="0123456789abcdefABCDEF:.%/[]x- ", max_size=48))
def test_is_public_never_raises_for_address_like_text(text: str) -> None:
    assert is_public(text) in (True, False)


# ---- check_target uses it -----------------------------------------------------------------------


def test_check_target_refuses_the_nat64_metadata_address() -> None:
    with pytest.raises(ValueError, match="not a public address"):
        webhooks.check_target(
            "https://hooks.example.com/x", lambda host, port: ["64:ff9b::a9fe:a9fe"]
        )


def test_check_target_passes_a_public_address() -> None:
    assert webhooks.check_target(
        "https://hooks.example.com/x", lambda host, port: ["8.8.8.8"], allow_loopback_http=False
    ) == ["8.8.8.8"]
