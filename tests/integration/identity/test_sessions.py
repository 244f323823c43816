"""Sessions: single-use refresh tokens (also under concurrency), signing out this session,
one session or everywhere (with the sessions switched from it), and a password change that
cuts off every token."""
from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from domain.db.provider import DataProvider
from domain.iam import services as iam
from domain.identity import services as identity
from domain.identity import sessions
from tests.integration.identity.conftest import (
    ME,
    MEMBERS,
    SESSIONS,
    TOKENS,
    Org,
    live_session_ids,
    refresh,
    session_state,
    sessions_of,
)
from tests.integration.web.helpers import assert_refused
from tests.support import refs, tenants
from tests.support.locks import backend_pid, blocked_by
from tests.support.tenants import Tokens, sign_in, tokens_of
from tests.support.waiting import wait_for

PASSWORD_URL = "/api/v1/identity/password"
NEW_PASSWORD = "a brand new password 4567"


def test_a_refresh_token_works_once_and_its_successor_works(client: FlaskClient, provider: DataProvider,
                                                            org: Org) -> None:
    first = sign_in(client, org.employee)
    second = tokens_of(refresh(client, first))
    third = tokens_of(refresh(client, second))
    assert len({first.refresh_token, second.refresh_token, third.refresh_token}) == 3
    assert first.session_id == second.session_id == third.session_id
    assert client.get(ME, headers=third.bearer).json["user_id"] == str(org.employee.user_id)
    # The access tokens of a rotated session keep working until they expire.
    assert client.get(ME, headers=first.bearer).status_code == 200
    assert session_state(provider, third.session_id).revoked_at is None


def test_a_refreshed_token_keeps_the_tenant(client: FlaskClient, org: Org) -> None:
    tokens = tokens_of(refresh(client, sign_in(client, org.admin)))
    assert client.get(ME, headers=tokens.bearer).json["tenant_id"] == str(org.tenant_id)
    assert client.get("/api/v1/iam/members", headers=tokens.bearer).status_code == 200


def _race(apps: list[Flask], tokens: Tokens, attempts: int) -> list[Any]:
    """Present the same refresh token ``attempts`` times at once, spread over ``apps``."""
    clients = [apps[i % len(apps)].test_client() for i in range(attempts)]
    start = threading.Barrier(attempts)
    answers: list[Any] = [None] * attempts

    def attempt(i: int) -> None:
        start.wait(timeout=30)
        answers[i] = refresh(clients[i], tokens)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(a is not None for a in answers), "a refresh did not answer"
    return answers


def test_concurrent_refreshes_with_one_token_let_exactly_one_through(
        app: Flask, other_app: Flask, client: FlaskClient, provider: DataProvider, org: Org) -> None:
    tokens = sign_in(client, org.employee)
    answers = _race([app, other_app], tokens, attempts=4)
    statuses = Counter(a.status_code for a in answers)
    assert statuses == Counter({200: 1, 401: 3}), [a.get_data(as_text=True)[:200] for a in answers]
    for answer in answers:
        if answer.status_code == 401:
            assert answer.json["field"] == "refresh_token"
    # The losers presented a token that was no longer current: indistinguishable from a
    # replay, so the session is revoked (reuse detection), the winner's new tokens too.
    winner = tokens_of(next(a for a in answers if a.status_code == 200))
    assert session_state(provider, tokens.session_id).revoked_at is not None
    assert_refused(client.get(ME, headers=winner.bearer), 401, "Authorization")


def test_sign_out_ends_this_session_only(client: FlaskClient, provider: DataProvider, org: Org) -> None:
    here, there = sign_in(client, org.employee), sign_in(client, org.employee)
    response = client.delete(f"{SESSIONS}/current", headers=here.bearer)
    assert response.status_code == 200 and response.json == {"revoked": 1}
    assert_refused(client.get(ME, headers=here.bearer), 401, "Authorization")
    assert_refused(refresh(client, here), 401, "refresh_token")
    assert session_state(provider, here.session_id).revoked_reason == "signed out"
    assert client.get(ME, headers=there.bearer).status_code == 200
    tokens_of(refresh(client, there))


def test_sign_out_everywhere_ends_every_session(client: FlaskClient, provider: DataProvider,
                                                org: Org) -> None:
    here, there = sign_in(client, org.employee), sign_in(client, org.employee)
    bystander = sign_in(client, org.admin)
    response = client.delete(SESSIONS, headers=here.bearer)
    assert response.status_code == 200 and response.json == {"revoked": 2}
    for tokens in (here, there):
        assert_refused(client.get(ME, headers=tokens.bearer), 401, "Authorization")
        assert_refused(refresh(client, tokens), 401, "refresh_token")
    assert live_session_ids(provider, org.employee.user_id) == set()
    assert client.get(ME, headers=bystander.bearer).status_code == 200


def test_my_sessions_are_listed_and_one_can_be_ended(client: FlaskClient, provider: DataProvider,
                                                     org: Org) -> None:
    here, there = sign_in(client, org.employee), sign_in(client, org.employee)
    listed = client.get(SESSIONS, headers=here.bearer).json["items"]
    assert {item["id"] for item in listed} == {str(here.session_id), str(there.session_id)}
    assert [item["current"] for item in listed if item["id"] == str(here.session_id)] == [True]
    assert {item["tenant"] for item in listed} == {org.slug}
    response = client.delete(f"{SESSIONS}/{there.session_id}", headers=here.bearer)
    assert response.status_code == 200 and response.json == {"revoked": 1}
    assert_refused(client.get(ME, headers=there.bearer), 401, "Authorization")
    assert_refused(refresh(client, there), 401, "refresh_token")
    assert client.get(ME, headers=here.bearer).status_code == 200
    listed = client.get(SESSIONS, headers=here.bearer).json["items"]
    assert [item["id"] for item in listed] == [str(here.session_id)]


def test_someone_elses_session_cannot_be_ended(client: FlaskClient, provider: DataProvider, org: Org) -> None:
    mine, theirs = sign_in(client, org.admin), sign_in(client, org.employee)
    before = sessions_of(provider, org.employee.user_id)
    assert_refused(client.delete(f"{SESSIONS}/{theirs.session_id}", headers=mine.bearer), 404, "session_id")
    assert sessions_of(provider, org.employee.user_id) == before
    assert client.get(ME, headers=theirs.bearer).status_code == 200


# --- sessions opened by a tenant switch -------------------------------------------------------

SWITCH = "/api/v1/identity/tenant"


def _second_tenant(provider: DataProvider, org: Org) -> str:
    """Make the employee a member of a second tenant too; its slug."""
    other = tenants.create_tenant(provider, (), prefix="other")
    tenants.add_member(provider, other.id, "employee", account=org.employee)
    return other.slug


@pytest.mark.parametrize("end", ["signed out", "ended from another session", "refresh token replayed"])
def test_sessions_switched_from_a_session_end_with_it(client: FlaskClient, provider: DataProvider, org: Org,
                                                      end: str) -> None:
    # A stolen access token bought, by a switch, a session and a refresh token of its own that
    # outlived the victim's sign-out (until the victim's session would have expired).
    victim, other = sign_in(client, org.employee), _second_tenant(provider, org)
    stolen = tokens_of(client.post(SWITCH, headers=victim.bearer, json={"tenant": other}))
    again = tokens_of(client.post(SWITCH, headers=stolen.bearer, json={"tenant": org.slug}))
    if end == "signed out":
        ended = client.delete(f"{SESSIONS}/current", headers=victim.bearer)
        assert ended.status_code == 200 and ended.json == {"revoked": 3}
    elif end == "ended from another session":
        elsewhere = sign_in(client, org.employee, org.slug)
        ended = client.delete(f"{SESSIONS}/{victim.session_id}", headers=elsewhere.bearer)
        assert ended.status_code == 200 and ended.json == {"revoked": 3}
    else:
        tokens_of(refresh(client, victim))
        assert_refused(refresh(client, victim), 401, "refresh_token")
    for tokens in (victim, stolen, again):
        assert_refused(client.get(ME, headers=tokens.bearer), 401, "Authorization")
        assert_refused(refresh(client, tokens), 401, "refresh_token")
        assert session_state(provider, tokens.session_id).revoked_at is not None


@pytest.mark.parametrize("how", ["cut off", "deactivated"])
def test_a_cut_off_in_one_tenant_leaves_the_sessions_switched_to_another(
        client: FlaskClient, provider: DataProvider, org: Org, how: str) -> None:
    # A tenant admin's cut-off (or deactivation) ended, and counted, the member's sessions in
    # the other tenants they had switched to from one of its sessions.
    here, other = sign_in(client, org.employee), _second_tenant(provider, org)
    there = tokens_of(client.post(SWITCH, headers=here.bearer, json={"tenant": other}))
    back = tokens_of(client.post(SWITCH, headers=there.bearer, json={"tenant": org.slug}))
    admin = sign_in(client, org.admin)
    if how == "cut off":
        ended = client.post(f"{MEMBERS}/{org.employee.user_id}/cut-off", headers=admin.bearer)
        assert ended.status_code == 200 and ended.json == {"revoked": 2}, ended.get_data(as_text=True)[:300]
    else:
        ended = client.post(f"{MEMBERS}/{org.employee.user_id}/deactivate", headers=admin.bearer)
        assert ended.status_code == 200, ended.get_data(as_text=True)[:300]
    for tokens in (here, back):
        assert_refused(client.get(ME, headers=tokens.bearer), 401, "Authorization")
        assert session_state(provider, tokens.session_id).revoked_at is not None
    assert session_state(provider, there.session_id).revoked_at is None
    assert client.get(ME, headers=there.bearer).json["tenant_id"] != str(org.tenant_id)
    assert tokens_of(refresh(client, there)).session_id == there.session_id


def test_a_switch_racing_the_sign_out_of_its_session_starts_nothing(
        app: Flask, client: FlaskClient, provider: DataProvider, org: Org) -> None:
    # The sign-out has revoked the session, not yet committed: the switch waits for it, then
    # finds the session ended (else it would start a session the sign-out never saw).
    victim, other = sign_in(client, org.employee), _second_tenant(provider, org)
    with ThreadPoolExecutor(1) as pool:
        with provider.management() as signing_out:
            sessions.revoke(signing_out, victim.session_id, "signed out")
            pid, management = backend_pid(signing_out), provider.url_of("management")
            switching = pool.submit(lambda: app.test_client().post(SWITCH, headers=victim.bearer,
                                                                   json={"tenant": other}))
            wait_for(lambda: switching.done() or blocked_by(management, pid) >= 1, timeout=30,
                     message="the switch to wait for the sign-out")
            signing_out.commit()
        answer = switching.result(timeout=60)
    assert_refused(answer, 401, "Authorization")
    assert live_session_ids(provider, org.employee.user_id) == set()


def test_a_password_change_cuts_off_every_token_and_returns_working_ones(
        client: FlaskClient, provider: DataProvider, org: Org) -> None:
    here, there = sign_in(client, org.employee), sign_in(client, org.employee)
    response = client.post(PASSWORD_URL, headers=here.bearer,
                           json={"current_password": org.employee.password, "new_password": NEW_PASSWORD})
    fresh = tokens_of(response)
    for old in (here, there):
        assert_refused(client.get(ME, headers=old.bearer), 401, "Authorization")
        assert_refused(refresh(client, old), 401, "refresh_token")
        assert session_state(provider, old.session_id).revoked_reason == "password changed"
    assert client.get(ME, headers=fresh.bearer).json["tenant_id"] == str(org.tenant_id)
    assert live_session_ids(provider, org.employee.user_id) == {fresh.session_id}
    tokens_of(refresh(client, fresh))
    # The old password no longer signs in; the new one does.
    old_sign_in = client.post(TOKENS, json={"email": org.employee.email, "password": org.employee.password})
    assert_refused(old_sign_in, 401, "password")
    sign_in(client, org.employee, password=NEW_PASSWORD)


def test_a_wrong_current_password_changes_nothing(client: FlaskClient, provider: DataProvider,
                                                  org: Org) -> None:
    tokens = sign_in(client, org.employee)
    before = sessions_of(provider, org.employee.user_id)
    response = client.post(PASSWORD_URL, headers=tokens.bearer,
                           json={"current_password": "not my password 000", "new_password": NEW_PASSWORD})
    assert_refused(response, 422, "current_password")
    assert sessions_of(provider, org.employee.user_id) == before
    assert client.get(ME, headers=tokens.bearer).status_code == 200
    response = client.post(TOKENS, json={"email": org.employee.email, "password": NEW_PASSWORD})
    assert_refused(response, 401, "password")
    sign_in(client, org.employee)


def test_an_account_without_a_password_cannot_be_signed_into_with_any_password(
        client: FlaskClient, provider: DataProvider) -> None:
    # An account made through an external provider has no password hash. The placeholder
    # hash verified against for timing must not make its (public) password a valid one.
    tenant = tenants.create_tenant(provider, ["owner"])
    with provider.management() as session:
        user = identity.create_user(session, email=refs.email("oidc-only"), name="Only OIDC",
                                    password_hash=None)
        iam.grant_role(session, user.id, tenant.id, "employee")
        session.commit()
        email = user.email
    for password in ("not-a-real-password", "another guess"):
        response = client.post("/api/v1/identity/tokens", json={"email": email, "password": password})
        assert_refused(response, 401, "password")
    with provider.management() as session:
        assert sessions.live_sessions(session, user.id) == []


def test_a_user_agent_with_control_characters_is_stored_without_them(
        client: FlaskClient, provider: DataProvider) -> None:
    # PostgreSQL refuses NUL in text: the header used to turn a sign-in into a 500.
    tenant = tenants.create_tenant(provider, ["employee"])
    account = tenant.member("employee")
    response = client.post("/api/v1/identity/tokens", json={"email": account.email,
                           "password": account.password}, headers={"User-Agent": "evil\x00agent\x07"})
    assert response.status_code == 200
    with provider.management() as session:
        [row] = sessions.live_sessions(session, account.user_id)
    assert row.user_agent == "evilagent"
