"""Revocation across processes: two web apps on one Redis, a real gunicorn server, a
flushed revocation store rebuilt from the database, Redis unreachable (503, never access),
and cached IAM decisions invalidated in every process when a member's roles change."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_jwt_extended import create_access_token
from redis import Redis

from config.settings import Settings
from domain.db.provider import DataProvider
from domain.identity.revocation import READY_KEY, session_key
from tests.integration.identity.conftest import ME, MEMBERS, SESSIONS, Org, refresh, session_state
from tests.integration.web.helpers import assert_refused
from tests.support import processes
from tests.support.apps import web_app
from tests.support.services import Stack
from tests.support.system import http
from tests.support.tenants import Tokens, sign_in, tokens_of

# --- two web apps ------------------------------------------------------------------------

@pytest.mark.parametrize("direction", ["A revokes, B refuses", "B revokes, A refuses"])
def test_a_sign_out_in_one_process_is_refused_by_the_other_at_once(
        client: FlaskClient, other_client: FlaskClient, org: Org, direction: str) -> None:
    revoker, checker = (client, other_client) if direction.startswith("A") else (other_client, client)
    tokens = sign_in(client, org.employee)
    assert checker.get(ME, headers=tokens.bearer).status_code == 200  # known and cached there
    assert revoker.delete(f"{SESSIONS}/current", headers=tokens.bearer).status_code == 200
    body = assert_refused(checker.get(ME, headers=tokens.bearer), 401, "Authorization")
    assert body["reason"] == "token has been revoked"


def test_a_cut_off_in_one_process_is_refused_by_the_other_at_once(
        client: FlaskClient, other_client: FlaskClient, org: Org) -> None:
    admin, victim = sign_in(client, org.admin), sign_in(client, org.employee)
    assert other_client.get(ME, headers=victim.bearer).status_code == 200
    response = client.post(f"/api/v1/iam/members/{org.employee.user_id}/cut-off", headers=admin.bearer)
    assert response.json == {"revoked": 1}
    assert_refused(other_client.get(ME, headers=victim.bearer), 401, "Authorization")
    assert_refused(refresh(other_client, victim), 401, "refresh_token")


# --- a real second web process -----------------------------------------------------------

@pytest.fixture(scope="module")
def gunicorn_url(stack: Stack, settings: Settings, log_dir: Path) -> Iterator[str]:
    """The web app served by gunicorn (two worker processes) on the session's stack."""
    server, url = processes.gunicorn("identity-web", stack.env(VAR_DIR=str(settings.var_dir)), log_dir,
                                     workers=2)
    yield url
    server.stop()


def get(base: str, path: str, token: str | None) -> tuple[int, dict[str, object]]:
    """GET over HTTP; the status and the JSON body (0 and nothing if nothing answered)."""
    reply = http(base + path, bearer=token)
    return reply.status, reply.json() if reply.body else {}


def test_a_gunicorn_process_refuses_a_token_revoked_here(client: FlaskClient, org: Org,
                                                         gunicorn_url: str) -> None:
    tokens = sign_in(client, org.employee)
    for _ in range(4):  # whichever of its workers answers
        assert get(gunicorn_url, ME, tokens.access_token)[0] == 200
    assert client.delete(f"{SESSIONS}/current", headers=tokens.bearer).status_code == 200
    for _ in range(4):
        status, body = get(gunicorn_url, ME, tokens.access_token)
        assert (status, body.get("reason")) == (401, "token has been revoked")


# --- the revocation store emptied ---------------------------------------------------------

def test_a_flushed_store_is_rebuilt_and_the_revoked_token_stays_refused(
        client: FlaskClient, other_client: FlaskClient, org: Org, broker_redis: Redis,
        settings: Settings) -> None:
    revoked, valid = sign_in(client, org.employee), sign_in(client, org.employee)
    assert client.delete(f"{SESSIONS}/current", headers=revoked.bearer).status_code == 200
    assert broker_redis.exists(session_key(revoked.session_id), READY_KEY) == 2
    broker_redis.flushdb()
    assert broker_redis.exists(session_key(revoked.session_id), READY_KEY) == 0
    # Running processes remember the revocation (their mirror of the access state).
    assert_refused(other_client.get(ME, headers=revoked.bearer), 401, "Authorization")
    assert_refused(client.get(ME, headers=revoked.bearer), 401, "Authorization")
    assert client.get(ME, headers=valid.bearer).status_code == 200
    assert other_client.get(ME, headers=valid.bearer).status_code == 200
    # A process started after the flush rebuilds the store from the database before it
    # trusts it, for every process that starts later.
    with web_app(settings) as newcomer:
        assert_refused(newcomer.test_client().get(ME, headers=revoked.bearer), 401, "Authorization")
        assert newcomer.test_client().get(ME, headers=valid.bearer).status_code == 200
        assert broker_redis.exists(session_key(revoked.session_id), READY_KEY) == 2


def test_a_valid_token_works_first_after_a_flush(client: FlaskClient, org: Org, broker_redis: Redis) -> None:
    # The first request after the flush is a valid one: it rebuilds, and is let through.
    revoked, valid = sign_in(client, org.employee), sign_in(client, org.employee)
    assert client.delete(f"{SESSIONS}/current", headers=revoked.bearer).status_code == 200
    broker_redis.flushdb()
    assert client.get(ME, headers=valid.bearer).status_code == 200
    assert_refused(client.get(ME, headers=revoked.bearer), 401, "Authorization")


def test_revocations_after_a_flush_still_count(client: FlaskClient, other_client: FlaskClient, org: Org,
                                               broker_redis: Redis) -> None:
    tokens = sign_in(client, org.employee)
    broker_redis.flushdb()
    assert client.delete(f"{SESSIONS}/current", headers=tokens.bearer).status_code == 200
    assert_refused(other_client.get(ME, headers=tokens.bearer), 401, "Authorization")


# --- Redis unreachable --------------------------------------------------------------------

@pytest.fixture
def unreachable_app(settings: Settings) -> Iterator[Flask]:
    """The web app with its broker (revocations, IAM versions) on a port nobody listens on.
    Rate-limit counters stay on the live Redis: the limiter is one object shared by every
    app of this process, and it would otherwise keep pointing at the dead port."""
    dead = "redis://127.0.0.1:1/0"
    broken = settings.model_copy(update={
        "broker_url": dead, "result_backend": dead, "rate_limit_storage_url": settings.broker_url})
    with web_app(broken) as flask_app:
        yield flask_app


def test_redis_unreachable_refuses_access_with_503(unreachable_app: Flask, org: Org,
                                                   client: FlaskClient, provider: DataProvider) -> None:
    tokens = sign_in(client, org.employee)
    with unreachable_app.app_context():
        signed_there = create_access_token(identity=str(org.employee.user_id), additional_claims={
            "sid": str(tokens.session_id), "tenant": str(org.tenant_id), "op": False})
    dead = unreachable_app.test_client()
    for token in (signed_there, tokens.access_token):
        response = dead.get(ME, headers={"Authorization": f"Bearer {token}"})
        body = assert_refused(response, 503, "Authorization")
        assert body["error"] == "access_unavailable"
    # A sign-out cannot be recorded without Redis: refused, and nothing half done.
    assert_refused(dead.delete(SESSIONS, headers=tokens.bearer), 503, "Authorization")
    assert session_state(provider, tokens.session_id).revoked_at is None
    assert client.get(ME, headers=tokens.bearer).status_code == 200


# --- cached IAM decisions -------------------------------------------------------------------

def _members_status(clients: list[FlaskClient], tokens: Tokens) -> list[int]:
    return [c.get(MEMBERS, headers=tokens.bearer).status_code for c in clients]


def test_a_role_change_is_seen_by_the_next_request_in_every_process(
        client: FlaskClient, other_client: FlaskClient, org: Org) -> None:
    both = [client, other_client]
    admin, member = sign_in(client, org.admin), sign_in(client, org.employee)
    assert _members_status(both, member) == [403, 403]  # cached in both processes
    promote = client.put(f"{MEMBERS}/{org.employee.user_id}/roles", headers=admin.bearer,
                         json={"roles": ["admin"]})
    assert promote.status_code == 200 and promote.json["roles"] == ["admin"]
    assert _members_status(both, member) == [200, 200]
    assert "users:manage" in other_client.get(ME, headers=member.bearer).json["permissions"]
    demote = other_client.put(f"{MEMBERS}/{org.employee.user_id}/roles", headers=admin.bearer,
                              json={"roles": ["employee"]})
    assert demote.status_code == 200
    assert _members_status(both, member) == [403, 403]


def test_a_custom_role_change_reaches_its_holders(client: FlaskClient, other_client: FlaskClient,
                                                  org: Org) -> None:
    admin, member = sign_in(client, org.admin), sign_in(client, org.employee)
    role = client.post("/api/v1/iam/roles", headers=admin.bearer,
                       json={"name": "auditor", "permissions": ["employment:read"]})
    assert role.status_code == 201
    assert client.put(f"{MEMBERS}/{org.employee.user_id}/roles", headers=admin.bearer,
                      json={"roles": ["auditor"]}).status_code == 200
    assert _members_status([client, other_client], member) == [403, 403]
    assert client.put(f"/api/v1/iam/roles/{role.json['id']}", headers=admin.bearer,
                      json={"permissions": ["employment:read", "users:manage"]}).status_code == 200
    assert _members_status([client, other_client], member) == [200, 200]


def test_a_refused_role_change_changes_nothing(client: FlaskClient, other_client: FlaskClient,
                                               org: Org) -> None:
    member = sign_in(client, org.employee)
    response = client.put(f"{MEMBERS}/{org.employee.user_id}/roles", headers=member.bearer,
                          json={"roles": ["admin"]})
    assert_refused(response, 403, None)
    assert _members_status([client, other_client], member) == [403, 403]
    refreshed = tokens_of(refresh(client, member))
    assert "users:manage" not in client.get(ME, headers=refreshed.bearer).json["permissions"]


def test_a_refresh_token_replayed_while_redis_is_unreachable_still_revokes_the_session(
        unreachable_app: Flask, client: FlaskClient, provider: DataProvider, org: Org) -> None:
    # Reuse detection must not depend on Redis: the database is the durable record, and
    # the party who replays the spent token may be the victim noticing the theft. If the
    # revocation is dropped here, whoever holds the current refresh token keeps the session.
    first = sign_in(client, org.employee)
    current = tokens_of(refresh(client, first))
    replay = refresh(unreachable_app.test_client(), first)
    assert replay.status_code in (401, 503), replay.get_data(as_text=True)[:300]
    assert "access_token" not in (replay.json or {})
    assert session_state(provider, first.session_id).revoked_at is not None
    assert_refused(refresh(client, current), 401, "refresh_token")
