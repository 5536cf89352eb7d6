"""Fixtures of the unit layer, and its guard: no unit test may open a socket or load moto."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from qwen_edit.context import Context

from .fakes import Fakes, fake_context


class NetworkUsed(AssertionError):
    """A unit test tried to reach the network."""


class NetworkGuard:
    """Every way out of the process, refused and remembered (a use case that swallows the
    error still fails the package at teardown)."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def refuse(self, what: str) -> Any:
        def refused(*args: Any, **kwargs: Any) -> Any:
            self.attempts.append(what)
            raise NetworkUsed(f"the unit layer may not use the network ({what})")

        return refused


@pytest.fixture(scope="package", autouse=True)
def network_guard() -> Iterator[NetworkGuard]:
    guard = NetworkGuard()
    moto_before = "moto" in sys.modules  # a full run may have loaded it for other layers
    with pytest.MonkeyPatch.context() as patch:
        for name in ("connect", "connect_ex", "sendto"):
            patch.setattr(socket.socket, name, guard.refuse(f"socket.{name}"))
        patch.setattr(socket, "getaddrinfo", guard.refuse("getaddrinfo"))
        patch.setattr(socket, "create_connection", guard.refuse("create_connection"))
        yield guard
    assert guard.attempts == [], f"unit tests reached for the network: {guard.attempts}"
    if not moto_before:
        assert "moto" not in sys.modules, "a unit test imported moto"


@pytest.fixture
def wired() -> tuple[Context, Fakes]:
    return fake_context()


@pytest.fixture
def ctx(wired: tuple[Context, Fakes]) -> Context:
    return wired[0]


@pytest.fixture
def fakes(wired: tuple[Context, Fakes]) -> Fakes:
    return wired[1]
