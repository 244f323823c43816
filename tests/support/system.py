"""The run command as a user starts it: a copy of the checkout, a clean environment, HTTP probes.

Used by the end-to-end test of ``bin/start``: the checkout is copied (tracked and untracked,
non-ignored files, never ``.venv`` or ``var/``) so ``bin/install`` builds a fresh virtual
environment, and the environment holds no service URL, as on a machine with only Python.
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import psutil

from tests.support.services import ROOT

# What a login shell on a fresh machine has, plus how this machine installs packages
# (pip's index, wheel folder, proxies): none of it configures Allotment.
BASIC_VARIABLES = ("HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ", "TMPDIR")
INSTALL_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")

# Never follow a proxy to reach 127.0.0.1.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class RunCommand:
    """``bin/start`` running in a copy of the checkout."""

    root: Path
    process: subprocess.Popen[bytes]
    output: Path
    web: str
    flower: str
    flower_auth: str

    def output_tail(self, lines: int = 200) -> str:
        """The last lines the run command printed."""
        return "\n".join(self.output.read_text(errors="replace").splitlines()[-lines:])

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the run command's process group, as a terminal sends it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGINT)


def copy_worktree(destination: Path, source: Path = ROOT) -> None:
    """Copy the files git would commit (tracked and untracked, not ignored) to ``destination``."""
    listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=source,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        path = source / name
        if not path.is_file():  # tracked but deleted in the working tree
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def _system_path() -> str:
    # Drop this test run's virtual environment: bin/install must find the machine's Python.
    venv_bin = str(Path(sys.prefix) / "bin")
    parts = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep)
    return os.pathsep.join(p for p in parts if p and p != venv_bin and "/.venv/" not in p + "/")


def clean_environment(**settings: str) -> dict[str, str]:
    """A login shell's environment with no service URL or test variable, plus ``settings``."""
    env = {name: value for name, value in os.environ.items()
           if name in BASIC_VARIABLES or name in INSTALL_VARIABLES or name.startswith("PIP_")}
    env["PATH"] = _system_path()
    env.update(settings)
    return env


@dataclass(frozen=True)
class Reply:
    """An HTTP answer (status 0: nothing listening yet)."""

    status: int
    body: bytes
    headers: Message = field(default_factory=Message)  # case-insensitive, like HTTP's

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def http(url: str, *, method: str = "GET", body: Any = None, auth: str | None = None,
         bearer: str | None = None, timeout: float = 15.0) -> Reply:
    """Send one request (never through a proxy); connection failures answer status 0
    instead of raising. ``auth`` is ``user:password`` for Basic, ``bearer`` a token."""
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    if not url.startswith("http://"):
        raise ValueError(f"not a local http URL: {url}")
    # S310: the scheme is checked just above.
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with _opener.open(request, timeout=timeout) as response:
            return Reply(response.status, response.read(), response.headers)
    except urllib.error.HTTPError as exc:
        with exc:
            return Reply(exc.code, exc.read(), exc.headers)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return Reply(0, b"")


def processes_under(directory: Path) -> list[psutil.Process]:
    """Live processes whose command line or working directory mentions ``directory``.

    The embedded PostgreSQL backends show neither their binary nor their data folder on the
    command line, but they run in the data folder: the working directory catches them.
    """
    marker = str(directory.resolve())
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd", "status"]):
        if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(proc.info["cmdline"] or ())
        if marker in cmdline or (proc.info["cwd"] or "").startswith(marker):
            found.append(proc)
    return found


def describe(processes: list[psutil.Process]) -> str:
    """One line per process: pid, user, command line."""
    lines = []
    for proc in processes:
        try:
            lines.append(f"{proc.pid} {proc.username()} {' '.join(proc.cmdline())[:200]}")
        except psutil.Error:
            lines.append(f"{proc.pid} (gone)")
    return "\n".join(lines)


def kill_processes_under(directory: Path, timeout: float = 10.0) -> None:
    """Terminate, then kill, every process :func:`processes_under` finds (a failed test's leftovers)."""
    leftovers = processes_under(directory)
    for proc in leftovers:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(leftovers, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=timeout)
