"""The baselines the benchmarks compare against, as fast as Flask and Celery make them.

- ``create_bare_app()``: a bare Flask JSON endpoint.
- ``create_naive_app()``: the naive submit endpoint of issue 2: parse JSON, INSERT one row
  and COMMIT with an SQLAlchemy ORM session (engine built once per process, pooled), then
  ``delay()`` a noop Celery task.
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
from flask import Flask, request
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
