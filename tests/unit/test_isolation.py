"""The unit layer stays a unit layer: no network, and every fake implements its port."""

from __future__ import annotations

import socket

import pytest

from qwen_edit.context import Context
from qwen_edit.settings import ConfigurationError

from .conftest import NetworkGuard, NetworkUsed
from .fakes import Fakes


def test_no_unit_test_can_reach_the_network(network_guard: NetworkGuard) -> None:
    before = len(network_guard.attempts)
    with pytest.raises(NetworkUsed):
        socket.create_connection(("127.0.0.1", 9))
    with pytest.raises(NetworkUsed), socket.socket() as sock:
        sock.connect(("127.0.0.1", 9))
    with pytest.raises(NetworkUsed):
        socket.getaddrinfo("example.com", 443)
    assert len(network_guard.attempts) == before + 3
    del network_guard.attempts[before:]  # these three were this test's own


def test_ports_are_built_only_when_a_use_case_asks(ctx: Context, fakes: Fakes) -> None:
    assert ctx.jobs is fakes.jobs and ctx.jobs is ctx.jobs
    assert ctx.webhook_secret() == fakes.webhook_secret
    bare = Context(ctx.settings, {})
    with pytest.raises(ConfigurationError, match="no jobs"):
        bare.jobs  # noqa: B018
