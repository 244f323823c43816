"""The access mirror: each web process keeps revoked sessions and IAM versions fed by Redis
pub/sub, drained at the start of every request (domain.identity.mirror)."""
from __future__ import annotations

import uuid

import jwt
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from config.settings import Settings
from domain.bootstrap import build_provider, build_revocations
from domain.identity.mirror import AccessMirror
from domain.identity.revocation import session_key
from tests.integration.identity.conftest import ME, SESSIONS, Org
from tests.integration.web.helpers import assert_refused
from tests.support.tenants import sign_in, unverified


def test_a_revocation_reaches_another_process_over_the_channel(
        client: FlaskClient, other_client: FlaskClient, org: Org, broker_redis: Redis) -> None:
    tokens = sign_in(client, org.employee)
    assert other_client.get(ME, headers=tokens.bearer).status_code == 200  # its mirror is live
    assert client.delete(f"{SESSIONS}/current", headers=tokens.bearer).status_code == 200
    # Remove the key: only the published change can tell the other process now.
    broker_redis.delete(session_key(tokens.session_id))
    assert_refused(other_client.get(ME, headers=tokens.bearer), 401, "Authorization")


def test_a_dropped_subscription_is_noticed_and_the_state_reloaded(
        client: FlaskClient, other_client: FlaskClient, org: Org, broker_redis: Redis) -> None:
    tokens, valid = sign_in(client, org.employee), sign_in(client, org.employee)
    assert other_client.get(ME, headers=tokens.bearer).status_code == 200
    # Redis drops every subscriber (as it does to one whose buffer overflows)...
    assert broker_redis.client_kill_filter(_type="pubsub") >= 1
    # ...and a revocation is published while nobody listens: only the key records it.
    assert client.delete(f"{SESSIONS}/current", headers=tokens.bearer).status_code == 200
    assert broker_redis.exists(session_key(tokens.session_id)) == 1
    # The next request notices the lost subscription, resubscribes and reloads the keys.
    assert_refused(other_client.get(ME, headers=tokens.bearer), 401, "Authorization")
    assert other_client.get(ME, headers=valid.bearer).status_code == 200


def test_a_version_read_before_a_reload_is_not_kept(settings: Settings, broker_redis: Redis) -> None:
    provider = build_provider(settings)
    mirror = AccessMirror(build_revocations(settings, provider))
    tenant = str(uuid.uuid4())
    state = mirror.check(str(uuid.uuid4()), tenant)
    assert state is not None and state[1] is None  # live; version not known yet
    read_before = state[2]
    broker_redis.client_kill_filter(_type="pubsub")  # the mirror misses what follows
    state = mirror.check(str(uuid.uuid4()), tenant)  # notices, reloads: a new generation
    assert state is not None and state[2] != read_before
    mirror.remember_version(tenant, "stale-version", read_before)
    assert mirror.check(str(uuid.uuid4()), tenant)[1] is None  # type: ignore[index]
    mirror.remember_version(tenant, "current-version", state[2])
    assert mirror.check(str(uuid.uuid4()), tenant)[1] == "current-version"  # type: ignore[index]
    provider.dispose()


def test_a_token_without_expiry_is_refused_every_time(app: Flask, client: FlaskClient, org: Org) -> None:
    tokens = sign_in(client, org.employee)
    claims = unverified(tokens.access_token)
    with app.app_context():
        forged = jwt.encode({k: v for k, v in claims.items() if k != "exp"},
                            app.config["JWT_SECRET_KEY"], algorithm="HS256")
    for _ in range(2):
        assert_refused(client.get(ME, headers={"Authorization": f"Bearer {forged}"}), 401,
                       "Authorization")
