"""Starts the real ``mcp-engine serve`` for the tests: the binary named by
``MCP_ENGINE_BIN``, or the workspace's ``target/release/mcp-engine`` (then
``target/debug``). A missing binary fails the tests; it never skips them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_engine_client import Credentials

WORKSPACE = Path(__file__).resolve().parents[3]


def engine_binary() -> Path:
    named = os.environ.get("MCP_ENGINE_BIN")
    if named:
        return Path(named)
    for profile in ("release", "debug"):
        candidate = WORKSPACE / "target" / profile / "mcp-engine"
        if candidate.exists():
            return candidate
    raise RuntimeError(
        "no mcp-engine binary: run `cargo build --release` in the workspace, or set MCP_ENGINE_BIN"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """``serve --config`` on a dev setup made once: restarting it keeps its
    keys, its tokens and its port."""

    def __init__(self, folder: Path, config_lines: str = "") -> None:
        subprocess.run(
            [str(engine_binary()), "dev-config", "--out", str(folder)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if config_lines:
            config = folder / "engine.toml"
            config.write_text(config.read_text(encoding="utf-8") + config_lines, encoding="utf-8")
        self.folder = folder
        self.port = free_port()
        self.credentials = Credentials.load(folder / "credentials.json")
        self.credentials.addr = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                str(engine_binary()),
                "serve",
                "--config",
                str(self.folder / "engine.toml"),
                "--listen",
                f"127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        until = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > until or self.process.poll() is not None:
                    raise RuntimeError("mcp-engine serve did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
            self.process = None


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    served = Server(tmp_path_factory.mktemp("dev"))
    served.start()
    yield served
    served.stop()


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose principals may send one message a second."""
    served = Server(tmp_path_factory.mktemp("limited"), "\n[authorization]\nrate = 1\nburst = 1\n")
    served.start()
    yield served
    served.stop()
