"""Fixtures of the unit layer, and its guard: no unit test may open a socket or load moto."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from qwen_edit.context import Context

from .fakes import Fakes, fake_context


class NetworkUsed(AssertionError):
    """A unit test tried to reach the network."""


class NetworkGuard:
    """Every way out of the process, refused and remembered (a use case that swallows the
    error still fails the test at teardown). Only the test's own thread is judged: in a full
    run, threads of other layers' stacks (SQS pollers, moto) may still be winding down."""

    def __init__(self) -> None:
        self.attempts: list[str] = []
        self.thread = threading.current_thread()

    def refuse(self, what: str, original: Any) -> Any:
        def refused(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not self.thread:
                return original(*args, **kwargs)
            self.attempts.append(what)
            raise NetworkUsed(f"the unit layer may not use the network ({what})")

        return refused


# Per test, not per package: pytest-xdist may run other layers' files on the same worker in
# between, and they do use sockets.
@pytest.fixture(autouse=True)
def network_guard() -> Iterator[NetworkGuard]:
    guard = NetworkGuard()
    moto_before = "moto" in sys.modules  # a full run may have loaded it for other layers
    with pytest.MonkeyPatch.context() as patch:
        for name in ("connect", "connect_ex", "sendto"):
            original = getattr(socket.socket, name)
            patch.setattr(socket.socket, name, guard.refuse(f"socket.{name}", original))
        for name in ("getaddrinfo", "create_connection"):
            patch.setattr(socket, name, guard.refuse(name, getattr(socket, name)))
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
