"""A real ``redis-server`` for tests: on a free loopback port, in a temp dir, stoppable mid-test.

Usage::

    from redis_server import RedisServer, redis_server_fixture  # noqa: F401 - the fixture

    def test_x(redis_server: RedisServer) -> None:
        redis_server.url            # "redis://127.0.0.1:PORT/0"
        redis_server.stop()         # Redis goes away (the port stays reserved for it)
        redis_server.start()        # back on the same port, with its data (append-only file)
        redis_server.wipe()         # (while stopped) the next start is empty

``redis_server_auth`` runs with ``requirepass`` (``.password``; ``.url`` carries it). Tests
are skipped when redis-server is not installed (``make install`` installs it as root).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["RedisServer", "free_port", "redis_server_auth_fixture", "redis_server_fixture"]

BOUND = 20.0  # seconds a start or stop may take


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process; :meth:`stop` and :meth:`start` again on the same port."""

    def __init__(self, folder: Path, *, password: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (make install installs it as root)")
        self.binary = binary
        self.folder = folder
        self.password = password
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.proc is not None:
            return
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.folder),
            "--save", "",
            "--appendonly", "yes",  # a stop and start keeps the data, as a real Redis would
            "--daemonize", "no",
            "--logfile", str(self.folder / "redis.log"),
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.folder / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {log}")
            if self._pong():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} in {BOUND}s")

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                answer = s.recv(64)
        except OSError:
            return False
        return answer.startswith((b"+PONG", b"-NOAUTH"))

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=BOUND)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=BOUND)

    def restart(self) -> None:
        self.stop()
        self.start()

    def wipe(self) -> None:
        """Forget the data (while stopped): the next :meth:`start` is an empty Redis."""
        assert self.proc is None, "stop() first"
        for path in self.folder.iterdir():
            if path.name != "redis.log":
                shutil.rmtree(path) if path.is_dir() else path.unlink()


@pytest.fixture(name="redis_server")
def redis_server_fixture() -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="coop-redis-") as folder:
        server = RedisServer(Path(folder))
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(name="redis_server_auth")
def redis_server_auth_fixture() -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="coop-redis-") as folder:
        server = RedisServer(Path(folder), password="s3cret-Redis-pw")
        server.start()
        try:
            yield server
        finally:
            server.stop()
