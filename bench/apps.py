"""The baselines the benchmarks compare against, as fast as Flask and Celery make them.

- ``create_bare_app()``: a bare Flask JSON endpoint.
- ``create_naive_app()``: the naive submit endpoint of issue 2: parse JSON, INSERT one row
  and COMMIT with an SQLAlchemy ORM session (engine built once per process, pooled), then
  ``delay()`` a noop Celery task.
- ``create_auth_app()``: our whole app (``web:create_app()``, every hook) plus a pair of
  bench-only views returning the same JSON: ``/bench/auth/authed`` guarded by
  ``web.auth.requires("notifications:read")`` and ``/bench/auth/open`` not guarded.
- ``raw_celery``: a tiny Celery app with one noop task, configured like ours
  (``config.celery.celery_config``), for ``celery -A bench.apps:raw_celery worker``.

Each reads its configuration from the environment when it is built, never at import, so
the benchmark process can import the table below without a configured environment.
"""
from __future__ import annotations

import os
import uuid
from datetime import datetime
from typing import Any

import redis
from celery import Celery
from flask import Flask, jsonify, request
from sqlalchemy import DateTime, String, Uuid, create_engine, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from config.celery import celery_config
from config.settings import load_settings

RAW_COUNTER = "bench:raw:done"


class NaiveBase(DeclarativeBase):
    """The naive endpoint's own database."""


class NaiveSignup(NaiveBase):
    """One row per naive submit: the organisation and its admin."""

    __tablename__ = "naive_signups"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    organisation_name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(63))
    admin_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def create_bare_app() -> Flask:
    """A Flask app answering ``{"ok": true}`` and nothing else."""
    app = Flask(__name__)

    @app.route("/bare", methods=["GET", "POST"])
    def bare() -> Any:
        """The cheapest JSON answer Flask gives."""
        return {"ok": True}

    return app


def create_naive_app() -> Flask:
    """The naive submit endpoint on NAIVE_DATABASE_URL and BROKER_URL."""
    engine = create_engine(os.environ["NAIVE_DATABASE_URL"], pool_size=5, max_overflow=5)
    sessions = sessionmaker(engine, expire_on_commit=False)
    celery = Celery("bench-naive", broker=os.environ["BROKER_URL"], set_as_current=False)
    celery.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True,
                       broker_connection_retry_on_startup=True)

    @celery.task(name="bench.naive_noop", ignore_result=True)
    def naive_noop(signup_id: str) -> None:
        """Nothing: nobody consumes it during the enqueue benchmark."""

    app = Flask(__name__)

    @app.post("/naive")
    def naive() -> Any:
        """Parse JSON, INSERT + COMMIT one row, ``delay()`` one task, answer 202."""
        body = request.get_json()
        with sessions() as session:
            row = NaiveSignup(organisation_name=body["organisation_name"], slug=body["slug"],
                              admin_name=body["admin_name"], email=body["email"])
            session.add(row)
            session.commit()
        naive_noop.delay(str(row.id))
        return {"id": str(row.id)}, 202

    return app


AUTHED_PATH = "/bench/auth/authed"
OPEN_PATH = "/bench/auth/open"
AUTH_PERMISSION = "notifications:read"


def create_auth_app() -> Flask:
    """Our app with the auth benchmark's view pair: the same body, with and without the guard.

    Both views build the body the way ``GET /api/v1/iam/me`` does (pydantic ``MeOut``, then
    ``jsonify``) from fixed values, so the only difference between them is the guard:
    JWT verification, the revocation and IAM-version check, the permission decision.
    """
    from domain.iam.services import BUILTIN_ROLES  # noqa: PLC0415 - only this app needs our code
    from web import create_app  # noqa: PLC0415
    from web.auth import requires  # noqa: PLC0415
    from web.iam.api import MeOut  # noqa: PLC0415

    app = create_app()
    # Fixed values: every gunicorn worker builds its own app and must answer the same.
    user_id, tenant_id = uuid.UUID(int=1, version=4), uuid.UUID(int=2, version=4)
    permissions = BUILTIN_ROLES["owner"]

    def body() -> Any:
        return jsonify(MeOut(user_id=user_id, tenant_id=tenant_id,
                             permissions=sorted(permissions)).model_dump(mode="json"))

    def bench_open() -> Any:
        """The body, to anyone."""
        return body()

    @requires(AUTH_PERMISSION)
    def bench_authed() -> Any:
        """The same body, to a bearer of a tenant token granting ``notifications:read``."""
        return body()

    app.add_url_rule(OPEN_PATH, "bench_open", bench_open, methods=["GET"])
    app.add_url_rule(AUTHED_PATH, "bench_authed", bench_authed, methods=["GET"])
    return app


def create_raw_celery(environ: dict[str, str] | os._Environ[str]) -> Celery:
    """The plain Celery baseline: our configuration, one noop task that counts itself."""
    config = celery_config(load_settings(environ))
    config["beat_schedule"] = {}  # ours names tasks this app does not have
    app = Celery("bench-raw", set_as_current=False)
    app.config_from_object(config)
    counter: list[redis.Redis] = []  # one client per (forked) process, made on first use
    store_results = environ.get("BENCH_RAW_RESULTS") == "1"

    @app.task(name="bench.noop", ignore_result=not store_results)
    def noop() -> None:
        """Count one execution: the benchmark reads the counter to know when all are done."""
        if not counter:
            counter.append(redis.Redis.from_url(environ["BROKER_URL"]))
        counter[0].incr(RAW_COUNTER)

    return app


def __getattr__(name: str) -> Any:
    # ``celery -A bench.apps:raw_celery`` looks the app up by name: build it then, from the
    # worker's environment, and only then (module __getattr__, PEP 562).
    if name == "raw_celery":
        app = create_raw_celery(os.environ)
        globals()["raw_celery"] = app
        return app
    raise AttributeError(name)
