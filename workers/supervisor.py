"""The run command: start the whole system from the Procfile (``bin/start``).

With no DATABASE_URL / BROKER_URL it first starts the embedded PostgreSQL and Redis with
their data under VAR_DIR. It migrates the management and trial databases, prints where
the web app and Flower are, runs every Procfile process under honcho, and on Ctrl-C (or
SIGTERM) stops them all, the embedded servers last.
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

from config.settings import SettingsError, embedded_redis_port, host_port, load_settings
from domain.db import migrate
from workers import embedded

ROOT = Path(__file__).resolve().parents[1]
Server = embedded.EmbeddedPostgres | embedded.EmbeddedRedis


def _environment(started: list[Server]) -> dict[str, str]:
    # The servers it starts go into ``started`` at once, so a failure half-way stops them too.
    env = dict(os.environ)
    var_dir = ROOT / env.get("VAR_DIR", "var")
    env["VAR_DIR"] = str(var_dir)
    if not env.get("DATABASE_URL"):
        postgres = embedded.start_postgres(var_dir / "pg")
        started.append(postgres)
        env["DATABASE_URL"] = postgres.url("allotment")
        print(f"embedded PostgreSQL: {var_dir / 'pg'}", flush=True)
    if not env.get("BROKER_URL"):
        port = embedded_redis_port(env)
        redis = embedded.start_redis(var_dir / "redis", port)
        started.append(redis)
        env["BROKER_URL"], env["RESULT_BACKEND"] = redis.url(0), redis.url(1)
        print(f"embedded Redis: {redis.url(0)}", flush=True)
    if started:
        env.setdefault("COOKIE_SECURE", "false")  # local http
    env.setdefault("FLOWER_BASIC_AUTH", f"admin:{secrets.token_urlsafe(12)}")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env



def _url(host: str, port: int) -> str:
    """Where a browser on this machine reaches a server listening on ``host``."""
    # Listening on every address: this machine's own will do, in the same family (Flower's
    # tornado binds "::" for IPv6 only).
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104
    return f"http://{host_port(host, port)}/"


def main() -> int:
    """Run the system until interrupted; return the exit status."""
    try:
        load_settings(os.environ)
        embedded_redis_port(os.environ)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    started: list[Server] = []
    honcho: subprocess.Popen[bytes] | None = None

    def stop(signum: int, frame: FrameType | None) -> None:
        if honcho is None:  # still starting: unwind, the finally below stops what was started
            raise SystemExit(128 + signum)
        if honcho.poll() is None:
            honcho.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    try:
        env = _environment(started)
        settings = load_settings(env)
        for name, result in migrate.prepare(settings.database_url, settings.trial_database_url,
                                            settings.tenant_db_role).items():
            print(f"{name} database at revision {result.after}", flush=True)
        user, password = env["FLOWER_BASIC_AUTH"].split(":", 1)
        shown = "from FLOWER_BASIC_AUTH" if "FLOWER_BASIC_AUTH" in os.environ else password
        print(f"web:    {_url(settings.web_host, settings.web_port)}", flush=True)
        print(f"flower: {_url(settings.flower_address, settings.flower_port)} "
              f"(user {user}, password {shown})", flush=True)
        honcho = subprocess.Popen([sys.executable, "-m", "honcho", "start", "-f", str(ROOT / "Procfile"),
                                   "-d", str(ROOT)], env=env)
        try:
            return honcho.wait()
        except KeyboardInterrupt:
            # The terminal sent SIGINT to honcho too; give it time to stop its processes.
            return honcho.wait(timeout=60)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
        if honcho is not None and honcho.poll() is None:
            honcho.kill()
        for server in reversed(started):
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
