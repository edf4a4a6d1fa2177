"""The demo served in a process of its own, for the benchmarks that load it (space_load, memory).

`serve_demo(model)` starts `polyglot-vision demo MODEL --port P` (the command a user runs) with its uploads in a
temporary folder, waits until it answers, yields it and stops it as Ctrl-C would (the demo then empties its
upload cache). Its process id gives the server's own CPU time (`server_cpu_seconds`, from /proc) apart from the
load generator's.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

__all__ = ["Served", "free_port", "serve_demo", "server_cpu_seconds", "wait_until_served"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_served(server: subprocess.Popen, port: int, seconds: float = 180) -> None:
    """Return once GET /gradio_api/info answers 200; RuntimeError if the server exits or takes too long."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the demo exited with status {server.returncode}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/gradio_api/info")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.3)
    raise RuntimeError(f"the demo did not answer within {seconds:.0f} s")


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


@dataclass
class Served:
    port: int
    pid: int
    uploads: Path  # the demo's upload cache (GRADIO_TEMP_DIR)
    startup_s: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def serve_demo(model: str, env: dict | None = None, log=subprocess.DEVNULL) -> Iterator[Served]:
    """`polyglot-vision demo MODEL` on a free port of 127.0.0.1, its uploads in a temporary folder."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pv-served-uploads-") as uploads:
        env = dict(env or os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", GRADIO_TEMP_DIR=uploads)
        command = [sys.executable, "-m", "polyglot_vision.cli", "demo", model, "--port", str(port)]
        started = time.perf_counter()
        server = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            wait_until_served(server, port)
            yield Served(port, server.pid, Path(uploads), round(time.perf_counter() - started, 1))
        finally:
            server.send_signal(signal.SIGINT)  # as Ctrl-C: the demo closes and empties its upload cache
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
