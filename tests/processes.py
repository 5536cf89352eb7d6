"""Servers the tests start as a person would: a subprocess whose output goes to a log file.

Never a pipe that nobody reads: a busy server fills the pipe's 64 KiB buffer, then blocks on
its next log line, and can neither serve nor shut down. On any failure the log's tail is shown.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class ServedProcess:
    def __init__(self, command: list[str], workdir: Path):
        self.ready_file = workdir / "ready.json"
        self.log_file = workdir / "output.log"
        self.command = [*command, "--ready-file", str(self.ready_file)]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> dict[str, Any]:
        """Start the command; its ready document once it has written one."""
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not (self.ready_file.exists() and self.ready_file.read_text()):
            if self.process.poll() is not None:
                raise AssertionError(
                    f"exited {self.process.returncode} before it was ready:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(f"not ready after {timeout} s:\n{self.tail()}")
            time.sleep(0.1)
        return json.loads(self.ready_file.read_text())

    def stop(self, timeout: float = 15) -> float:
        """SIGTERM, then the seconds it took to exit; it must exit 0 within `timeout`."""
        assert self.process is not None
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            message = f"still running {timeout} s after SIGTERM:\n{self.tail()}"
            raise AssertionError(message) from None
        assert code == 0, f"exited {code}:\n{self.tail()}"
        return time.monotonic() - began

    def tail(self, lines: int = 40) -> str:
        text = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextmanager
def serving(command: list[str], workdir: Path) -> Iterator[dict[str, Any]]:
    """The command started, its ready document while it runs, and a clean stop after."""
    server = ServedProcess(command, workdir)
    ready = server.start()
    try:
        yield ready
    finally:
        server.stop()
