"""Auth benchmark: an authenticated JSON endpoint against the same endpoint without auth,
served the same way (one gunicorn, same workers), loaded by wrk at 8 and 64 connections.

    .venv/bin/python -m bench.auth [--duration 5] [--rounds 3] [--warmup 3] [--connections 8 64]

The pair comes from ``bench.apps:create_auth_app``: our whole app plus two views returning
the same JSON (built like ``GET /api/v1/iam/me``), one behind
``web.auth.requires("notifications:read")`` and one open. The guard is the difference: JWT
verification (once per token per process), revocation and IAM version from the access
mirror, the permission decision. The real ``GET /api/v1/iam/me`` is measured too, for
reference. A trial tenant and its owner are made in fresh databases; the token comes from a
real sign-in. See bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import uuid

from bench.apps import AUTHED_PATH, OPEN_PATH
from bench.common import (
    WRK_REPORT,
    BenchError,
    Endpoint,
    Run,
    Stack,
    Target,
    add_load_options,
    add_trial_tenant,
    ensure_wrk,
    final_line,
    http_call,
    measured_run,
    run_bench,
    run_wrk,
    start_server,
    table,
    targets_line,
    wait_listening,
)
from config.settings import load_settings
from domain.bootstrap import build_provider
from domain.iam import services as iam
from domain.identity import services as identity

APP = "bench.apps:create_auth_app()"
ENDPOINTS = (
    Endpoint("open", APP, OPEN_PATH, 200),
    Endpoint("authed", APP, AUTHED_PATH, 200),
    Endpoint("me", APP, "/api/v1/iam/me", 200),
)
PASSWORD = "bench owner password 0123"  # noqa: S105 - a throw-away account in throw-away databases
TARGET_RATIO = 0.8

# wrk script: the same GET with the same Authorization header to every endpoint (the open
# one ignores it), statuses other than the expected one counted, one machine-readable line.
WRK_SCRIPT = r"""
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  expected = tonumber(args[2])
  ok, bad, last_bad = 0, 0, 0
end

wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer __TOKEN__"
wrk.headers["Accept"] = "application/json"
""" + WRK_REPORT


def make_owner(env: dict[str, str]) -> tuple[str, str]:
    """A trial tenant with its default roles and an owner; the owner's email and the slug."""
    provider = build_provider(load_settings(env))
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    try:
        with provider.management() as session:
            tenant_id, slug = add_trial_tenant(session, "Bench Co")
            iam.create_default_roles(session, tenant_id)
            user = identity.create_user(session, email=email, name="Bench Owner",
                                        password_hash=identity.hash_password(PASSWORD))
            iam.grant_role(session, user.id, tenant_id, "owner")
            session.commit()
    finally:
        provider.dispose()
    return email, slug


def sign_in(port: int, email: str, slug: str) -> str:
    """A real sign-in through the server under test; the access token."""
    status, text = http_call(f"http://127.0.0.1:{port}/api/v1/identity/tokens",
                             body={"email": email, "password": PASSWORD, "tenant": slug})
    if status != 200:
        raise BenchError(f"sign-in answered {status}: {text[:500]}")
    return str(json.loads(text)["access_token"])


def probe(port: int, token: str) -> None:
    """Every endpoint answers 200 with a token, the guarded ones 401 without, all the same body."""
    bodies = {}
    for endpoint in ENDPOINTS:
        status, text = http_call(f"http://127.0.0.1:{port}{endpoint.path}", token=token)
        if status != endpoint.status:
            raise BenchError(f"{endpoint.name} answered {status}, expected {endpoint.status}: {text[:500]}")
        bodies[endpoint.name] = json.loads(text)
    for endpoint in ENDPOINTS[1:]:
        status, _ = http_call(f"http://127.0.0.1:{port}{endpoint.path}")
        if status != 401:
            raise BenchError(f"{endpoint.name} answered {status} without a token, expected 401")
    if set(bodies["open"]) != set(bodies["me"]) or bodies["open"] != bodies["authed"]:
        raise BenchError(f"the pair does not answer the same JSON: {bodies}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.auth", description=__doc__.split("\n")[0])
    add_load_options(parser, duration=5.0)
    parser.add_argument("--rounds", type=int, default=3,
                        help="measured runs of each endpoint per connection count, interleaved (3)")
    return parser.parse_args(argv)


def measure(args: argparse.Namespace, stack: Stack) -> dict[tuple[str, int], list[Run]]:
    """Start the server, sign in, then per connection count run every endpoint ``--rounds``
    times, interleaved (open, authed, me, open, ...), so drift on a shared machine hits all."""
    wrk = ensure_wrk()
    stack.start_redis()
    env = stack.env(stack.create_databases(), LOG_LEVEL=args.log_level,
                    RATE_LIMIT_SIGN_IN="1000 per minute")
    email, slug = make_owner(env)
    child, port = start_server(stack, Endpoint("auth", APP, OPEN_PATH, 200), env, args.web_workers)
    wait_listening(child, port, "gunicorn")
    token = sign_in(port, email, slug)
    probe(port, token)
    script = stack.tmp / "auth.lua"
    script.write_text(WRK_SCRIPT.replace("__TOKEN__", token))
    for endpoint in ENDPOINTS:
        if args.warmup > 0:
            run_wrk(wrk, str(script), endpoint, port, connections=args.connections[0],
                    seconds=args.warmup, threads=args.threads)
    runs: dict[tuple[str, int], list[Run]] = {}
    for connections in args.connections:
        for _ in range(args.rounds):
            for endpoint in ENDPOINTS:
                run = measured_run(wrk, str(script), endpoint, child, port, connections=connections,
                                   seconds=args.duration, threads=args.threads)
                runs.setdefault((endpoint.name, connections), []).append(run)
    return runs


def median_run(runs: list[Run]) -> Run:
    """The run with the median requests per second (the lower middle one of an even count)."""
    return sorted(runs, key=lambda r: r.rps)[(len(runs) - 1) // 2]


def _row(middle: Run, rounds: list[Run]) -> list[object]:
    """A table row: the median run's figures, the range of req/s, the median cpu, the totals."""
    return [middle.endpoint, middle.connections, f"{middle.rps:.1f}",
            f"{min(r.rps for r in rounds):.0f}-{max(r.rps for r in rounds):.0f}",
            f"{middle.p50_ms:.1f}", f"{middle.p99_ms:.1f}",
            f"{statistics.median(r.server_cpu_ms for r in rounds):.2f}",
            sum(r.requests for r in rounds), sum(r.unexpected for r in rounds),
            sum(r.socket_errors for r in rounds)]


def report(runs: dict[tuple[str, int], list[Run]], headline: int) -> int:
    """Print the table (median run of each), the ratios, the target and the final line."""
    middle = {key: median_run(rounds) for key, rounds in runs.items()}
    print(table(
        ["endpoint", "conns", "req/s", "req/s range", "p50 ms", "p99 ms", "cpu ms/req", "requests",
         "wrong status", "socket errors"], [_row(middle[key], rounds) for key, rounds in runs.items()]))
    failed = [r for rounds in runs.values() for r in rounds if r.failed]
    for r in failed:
        print(f"ERROR: {r.endpoint} @ {r.connections}: {r.unexpected} wrong statuses (last "
              f"{r.last_unexpected}) and {r.socket_errors} socket errors in {r.requests} requests",
              file=sys.stderr)
    for connections in sorted({c for _, c in runs}):
        authed, open_, me = (middle[(name, connections)] for name in ("authed", "open", "me"))
        paired = [a.rps / o.rps for a, o in zip(runs[("authed", connections)], runs[("open", connections)],
                                                   strict=True)]
        cpu = {name: statistics.median(r.server_cpu_ms for r in runs[(name, connections)])
               for name in ("authed", "open")}
        print(f"@ {connections} connections: authed/open = {authed.rps / open_.rps:.3f} "
              f"(per round: {' '.join(f'{x:.3f}' for x in paired)}); me/open = {me.rps / open_.rps:.3f}; "
              f"auth costs {cpu['authed'] - cpu['open']:.2f} ms of server cpu per request "
              f"(open {cpu['open']:.2f}, authed {cpu['authed']:.2f})")
    authed, open_ = middle[("authed", headline)], middle[("open", headline)]
    figures = {"authed_rps": authed.rps, "open_rps": open_.rps, "ratio": authed.rps / open_.rps}
    print(f"(median req/s of {len(runs[('open', headline)])} rounds at {headline} connections)")
    print(targets_line([Target("ratio", figures["ratio"], ">=", TARGET_RATIO)]))
    print(final_line("auth", figures, {"ratio": 3}), flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when it measured (target met or not), 1 on errors."""
    args = parse_args(argv)
    return run_bench(args.postgres, lambda stack: measure(args, stack),
                     lambda runs: report(runs, args.connections[0]))


if __name__ == "__main__":
    sys.exit(main())
