"""``/metrics`` in Prometheus' text format, for scaling each pool on its own (DESIGN §8).

Queue depth and the age of the oldest waiting message per queue (the signal to add workers
to that queue's pool), and open and dead messages per database. A scraper presents
METRICS_TOKEN as a bearer token; without the setting the endpoint does not exist.
"""
from __future__ import annotations

import hmac
import time
from typing import Any

from flask import Response, abort, current_app, request
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from config.celery import QUEUES
from domain.messaging import relay
from web.db import provider
from web.errors import error_response
from web.operations import bp
from workers.publisher import queue_stats


def _authorized(token: str) -> bool:
    given = request.headers.get("Authorization", "").removeprefix("Bearer ")
    return hmac.compare_digest(given.encode(), token.encode())


@bp.get("/metrics")
def metrics() -> Any:
    """Queue depth and age per queue, open and dead messages per database."""
    token = current_app.extensions["allotment.settings"].metrics_token
    if not token:
        abort(404)
    if not _authorized(token):
        return error_response(401, "unauthorized", "a valid metrics token is required", "Authorization")
    registry = CollectorRegistry()
    depth = Gauge("allotment_queue_depth", "Messages waiting in a queue", ["queue"], registry=registry)
    age = Gauge("allotment_queue_oldest_age_seconds", "Age of the oldest waiting message", ["queue"],
                registry=registry)
    now = time.time()
    for queue, (waiting, oldest) in queue_stats(current_app.extensions["allotment.celery"], QUEUES).items():
        depth.labels(queue).set(waiting)
        age.labels(queue).set(now - oldest if oldest is not None else 0)
    open_ = Gauge("allotment_outbox_open", "Messages not yet delivered", ["database"], registry=registry)
    dead = Gauge("allotment_outbox_dead", "Messages out of attempts", ["database"], registry=registry)
    oldest_open = Gauge("allotment_outbox_oldest_open_age_seconds", "Age of the oldest undelivered message",
                        ["database"], registry=registry)
    for counts in relay.outbox_counts(provider()):
        open_.labels(counts.database).set(counts.open)
        dead.labels(counts.database).set(counts.dead)
        oldest_open.labels(counts.database).set(
            now - counts.oldest_open_at.timestamp() if counts.oldest_open_at else 0)
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
