"""A perpbox server started by the tests (a subprocess on a free port, its own data directory)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account


def wait_until(pred: Any, timeout: float = 30.0) -> Any:
    """Poll ``pred`` until it returns something truthy (returned) or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data_dir: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        cmd = [sys.executable, "-m", "perpbox.cli", "serve", "--port", str(self.port), "--data-dir",
               str(self.data_dir), "--no-rate-limits", *self.args]
        self.log = open(self.data_dir.parent / f"server-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.post(self.url + "/info", json={"type": "meta"}, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {(self.data_dir.parent / f'server-{self.port}.log').read_text()}")
            time.sleep(0.2)
        raise RuntimeError("server did not start")

    def stop(self, kill: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            self.proc.wait(30)
        self.log.close()

    def info(self, body: dict) -> object:
        r = httpx.post(self.url + "/info", json=body, timeout=10)
        r.raise_for_status()
        return r.json()

    def fund(self, address: str, usd: str = "100000") -> None:
        r = httpx.post(self.url + "/dev/fund", json={"user": address, "usd": usd}, timeout=10)
        assert r.status_code == 200 and r.json()["status"] == "ok", r.text


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """No agents and no feed: the test is the only trader and the HIP-3 deployer; oracles hold."""
    srv = Server(tmp_path_factory.mktemp("srv") / "data", "--no-agents", "--feed", "none", "--seed", "3").start()
    yield srv
    srv.stop()


@pytest.fixture
def wallet(server: Server) -> Account:
    acct = Account.create()
    server.fund(acct.address)
    return acct
