"""Attacks on the platform's tokens: each is refused with 401 and changes nothing.

Forged tokens are presented at ``DELETE /api/v1/identity/sessions`` (sign out everywhere)
with the victim's ``sub`` and ``sid``: were one accepted, the victim's sessions would be
revoked. So every refusal is checked twice: the answer, and the victim's sessions as the
database holds them, and the victim's own token still working.
"""
from __future__ import annotations

import base64
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask.testing import FlaskClient
from redis import Redis

from config.settings import Settings
from domain.db.provider import DataProvider
from domain.iam import services as iam
from domain.iam.access import PermissionCache
from tests.integration.identity.conftest import (
    ME,
    REFRESH,
    SESSIONS,
    TOKENS,
    Org,
    make_org,
    refresh,
    session_state,
    sessions_of,
)
from tests.integration.web.helpers import assert_refused
from tests.support.tenants import Account, Tokens, sign_in, tokens_of, unverified

Claims = dict[str, Any]
_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_RSA_PRIVATE_PEM = _RSA_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption())
_RSA_PUBLIC_PEM = _RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: Claims, claims: Claims, key: bytes | None, digest: str = "sha256") -> str:
    """A JWT assembled by hand: an HMAC over it with ``key`` (whatever the header says),
    or no signature at all when ``key`` is None. PyJWT refuses to build some of these (an
    HMAC keyed with a public key), which is the point."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if key is None:
        return signing_input + "."
    return signing_input + "." + _b64(hmac.new(key, signing_input.encode(), digest).digest())


def _hs256(secret: str) -> Callable[[Claims], str]:
    return lambda claims: pyjwt.encode(claims, secret, algorithm="HS256")


def _forgeries(secret: str) -> dict[str, Callable[[Claims], str]]:
    """Ways to make a token for someone else's session without holding our key."""
    return {
        "another secret": _hs256("a-secret-that-is-not-ours-0123456789abcdef"),
        "alg none": lambda c: raw_token({"alg": "none", "typ": "JWT"}, c, None),
        "alg None, signature kept": lambda c: raw_token({"alg": "None", "typ": "JWT"}, c,
                                                        secret.encode()),
        "RS256 with an attacker's key": lambda c: pyjwt.encode(c, _RSA_PRIVATE_PEM, algorithm="RS256"),
        "RS256 header, HMAC with our secret": lambda c: raw_token({"alg": "RS256", "typ": "JWT"}, c,
                                                                  secret.encode()),
        "HS256 keyed with a public key": lambda c: raw_token({"alg": "HS256", "typ": "JWT"}, c,
                                                             _RSA_PUBLIC_PEM),
        "HS512 with our secret": lambda c: raw_token({"alg": "HS512", "typ": "JWT"}, c,
                                                     secret.encode(), "sha512"),
    }


FORGERIES = list(_forgeries("x"))


def _victim(client: FlaskClient, org: Org) -> Tokens:
    return sign_in(client, org.owner)


def _assert_victim_untouched(client: FlaskClient, provider: DataProvider, person: Account,
                             before: dict[uuid.UUID, Any], tokens: Tokens) -> None:
    assert sessions_of(provider, person.user_id) == before
    assert client.get(ME, headers=tokens.bearer).status_code == 200


def test_a_token_resigned_with_our_secret_is_accepted(client: FlaskClient, settings: Settings,
                                                      org: Org) -> None:
    # The control for every test below: the crafting itself yields a token we accept.
    tokens = _victim(client, org)
    copy = _hs256(settings.secret_key)(unverified(tokens.access_token))
    assert client.get(ME, headers={"Authorization": f"Bearer {copy}"}).status_code == 200


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_token_is_refused_and_changes_nothing(client: FlaskClient, provider: DataProvider,
                                                       settings: Settings, org: Org, forgery: str) -> None:
    tokens = _victim(client, org)
    before = sessions_of(provider, org.owner.user_id)
    forged = _forgeries(settings.secret_key)[forgery](unverified(tokens.access_token))
    response = client.delete(SESSIONS, headers={"Authorization": f"Bearer {forged}"})
    assert_refused(response, 401, "Authorization")
    _assert_victim_untouched(client, provider, org.owner, before, tokens)


def test_a_payload_swapped_under_a_genuine_signature_is_refused(client: FlaskClient, provider: DataProvider,
                                                                org: Org) -> None:
    # The employee keeps their own header and signature but claims to be the owner.
    victim, attacker = _victim(client, org), sign_in(client, org.employee)
    before = sessions_of(provider, org.owner.user_id)
    header, _, signature = attacker.access_token.split(".")
    claims = {**unverified(attacker.access_token), "sub": str(org.owner.user_id),
              "sid": str(victim.session_id)}
    forged = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    assert_refused(client.delete(SESSIONS, headers={"Authorization": f"Bearer {forged}"}),
                   401, "Authorization")
    _assert_victim_untouched(client, provider, org.owner, before, victim)


@pytest.mark.parametrize(("change", "reason"), [
    ({"exp": -10, "iat": -1000, "nbf": -1000}, "token has expired"),
    ({"nbf": 3600, "iat": 0, "exp": 7200}, None),
], ids=["expired", "not yet valid"])
def test_a_token_outside_its_lifetime_is_refused(client: FlaskClient, provider: DataProvider,
                                                 settings: Settings, org: Org, *,
                                                 change: dict[str, int], reason: str | None) -> None:
    tokens = _victim(client, org)
    before = sessions_of(provider, org.owner.user_id)
    now = int(time.time())
    claims = {**unverified(tokens.access_token), **{k: now + v for k, v in change.items()}}
    forged = _hs256(settings.secret_key)(claims)
    body = assert_refused(client.delete(SESSIONS, headers={"Authorization": f"Bearer {forged}"}),
                          401, "Authorization")
    if reason is not None:
        assert body["reason"] == reason
    _assert_victim_untouched(client, provider, org.owner, before, tokens)


@pytest.mark.parametrize("change", [
    {"sid": None}, {"sid": "not-a-uuid"}, {"sub": "not-a-uuid"}, {"sub": None}, {"sub": 12345},
    {"tenant": "not-a-uuid"}, {"type": "refresh"}, {"sexp": "2999-01-01"}, {"sexp": 1.5e12},
], ids=["sid missing", "sid not a uuid", "sub not a uuid", "sub missing", "sub not a string",
        "tenant not a uuid", "typed as a refresh token", "session end not a number",
        "session end not whole seconds"])
def test_a_token_with_malformed_claims_is_refused(client: FlaskClient, provider: DataProvider,
                                                  settings: Settings, org: Org,
                                                  change: dict[str, Any]) -> None:
    # Signed with our own secret: only the claims are wrong (a bug in an issuer, say).
    tokens = _victim(client, org)
    before = sessions_of(provider, org.owner.user_id)
    claims = {k: v for k, v in {**unverified(tokens.access_token), **change}.items() if v is not None}
    forged = _hs256(settings.secret_key)(claims)
    assert_refused(client.delete(SESSIONS, headers={"Authorization": f"Bearer {forged}"}),
                   401, "Authorization")
    _assert_victim_untouched(client, provider, org.owner, before, tokens)


def test_a_signed_tenant_claim_for_another_tenant_is_refused(client: FlaskClient, settings: Settings,
                                                             org: Org, provider: DataProvider) -> None:
    # Even a token signed with our key carries only what IAM grants: not a member, no access.
    elsewhere = make_org(provider)
    tokens = sign_in(client, org.admin)
    claims = {**unverified(tokens.access_token), "tenant": str(elsewhere.tenant_id)}
    forged = _hs256(settings.secret_key)(claims)
    body = assert_refused(client.get("/api/v1/iam/members", headers={"Authorization": f"Bearer {forged}"}),
                          401, "Authorization")
    assert "no longer a member" in body["reason"]


def test_an_api_token_is_read_from_the_header_only(client: FlaskClient, org: Org) -> None:
    tokens = _victim(client, org)
    client.set_cookie("access_token_cookie", tokens.access_token)
    assert_refused(client.get(ME), 401, "Authorization")
    assert_refused(client.get(f"{ME}?jwt={tokens.access_token}"), 401, "Authorization")


def test_a_refresh_token_is_not_an_access_token(client: FlaskClient, provider: DataProvider,
                                                org: Org) -> None:
    tokens = _victim(client, org)
    before = session_state(provider, tokens.session_id)
    # Sign-out with the refresh token: refused, and the session lives on.
    assert_refused(client.delete(f"{SESSIONS}/current", headers=tokens.refresh_bearer), 401, "Authorization")
    assert_refused(client.get(ME, headers=tokens.refresh_bearer), 401, "Authorization")
    assert session_state(provider, tokens.session_id) == before
    assert client.get(ME, headers=tokens.bearer).status_code == 200


def test_an_access_token_is_not_a_refresh_token(client: FlaskClient, provider: DataProvider,
                                                org: Org) -> None:
    tokens = _victim(client, org)
    before = session_state(provider, tokens.session_id)
    assert_refused(client.post(REFRESH, headers=tokens.bearer), 401, "Authorization")
    # Not mistaken for a replay: the session was neither rotated nor revoked.
    assert session_state(provider, tokens.session_id) == before
    tokens_of(refresh(client, tokens))


def test_a_refresh_token_of_another_secret_is_refused(client: FlaskClient, provider: DataProvider,
                                                      org: Org) -> None:
    tokens = _victim(client, org)
    before = session_state(provider, tokens.session_id)
    forged = _hs256("a-secret-that-is-not-ours-0123456789abcdef")(unverified(tokens.refresh_token))
    assert_refused(client.post(REFRESH, headers={"Authorization": f"Bearer {forged}"}), 401, "Authorization")
    assert session_state(provider, tokens.session_id) == before
    tokens_of(refresh(client, tokens))


def test_a_reused_refresh_token_revokes_the_whole_session(client: FlaskClient, provider: DataProvider,
                                                          org: Org) -> None:
    first = _victim(client, org)
    second = tokens_of(refresh(client, first))
    third = tokens_of(refresh(client, second))
    other_session = sign_in(client, org.owner)
    # The thief replays the first refresh token.
    body = assert_refused(refresh(client, first), 401, "refresh_token")
    assert "already used" in body["reason"]
    state = session_state(provider, first.session_id)
    assert state.revoked_at is not None and state.revoked_reason == "refresh token reused"
    # Every token of the family is dead, the newest ones included...
    for tokens in (first, second, third):
        assert_refused(client.get(ME, headers=tokens.bearer), 401, "Authorization")
    assert_refused(refresh(client, third), 401, "refresh_token")
    # ...and only that family: the user's other session is untouched.
    assert client.get(ME, headers=other_session.bearer).status_code == 200
    tokens_of(refresh(client, other_session))


def _assert_cut_off(client: FlaskClient, provider: DataProvider, tokens: Tokens) -> None:
    assert_refused(client.get(ME, headers=tokens.bearer), 401, "Authorization")
    assert_refused(refresh(client, tokens), 401, "refresh_token")
    assert session_state(provider, tokens.session_id).revoked_at is not None


def test_a_member_cut_off_by_a_tenant_admin_is_refused(client: FlaskClient, provider: DataProvider,
                                                       org: Org) -> None:
    admin, victim = sign_in(client, org.admin), sign_in(client, org.employee)
    response = client.post(f"/api/v1/iam/members/{org.employee.user_id}/cut-off", headers=admin.bearer)
    assert response.status_code == 200 and response.json == {"revoked": 1}
    _assert_cut_off(client, provider, victim)
    # Cut off, not banned: they may sign in again.
    assert client.get(ME, headers=sign_in(client, org.employee).bearer).status_code == 200


def test_a_tenant_admin_cannot_cut_off_someone_of_another_tenant(client: FlaskClient, provider: DataProvider,
                                                                 org: Org) -> None:
    elsewhere = make_org(provider)
    admin, victim = sign_in(client, org.admin), sign_in(client, elsewhere.employee)
    response = client.post(f"/api/v1/iam/members/{elsewhere.employee.user_id}/cut-off", headers=admin.bearer)
    assert_refused(response, 404, "user_id")
    assert session_state(provider, victim.session_id).revoked_at is None
    assert client.get(ME, headers=victim.bearer).status_code == 200


def test_a_user_cut_off_by_an_operator_is_refused_in_every_tenant(client: FlaskClient, provider: DataProvider,
                                                                  org: Org, operator: Account) -> None:
    second = make_org(provider)
    with provider.management() as session:
        iam.grant_role(session, org.employee.user_id, second.tenant_id, "employee")
        session.commit()
    here, there = sign_in(client, org.employee, org.slug), sign_in(client, org.employee, second.slug)
    op = sign_in(client, operator)
    response = client.post(f"/api/v1/operations/users/{org.employee.user_id}/cut-off", headers=op.bearer)
    assert response.status_code == 200 and response.json["revoked"] == 2
    _assert_cut_off(client, provider, here)
    _assert_cut_off(client, provider, there)


def test_a_tenant_admin_is_not_an_operator(client: FlaskClient, provider: DataProvider, org: Org) -> None:
    owner, victim = sign_in(client, org.owner), sign_in(client, org.employee)
    response = client.post(f"/api/v1/operations/users/{org.employee.user_id}/deactivate",
                           headers=owner.bearer)
    assert_refused(response, 403, None)
    assert session_state(provider, victim.session_id).revoked_at is None
    assert client.get(ME, headers=victim.bearer).status_code == 200


def test_a_member_deactivated_in_a_tenant_is_refused_there_only(client: FlaskClient, provider: DataProvider,
                                                                org: Org) -> None:
    second = make_org(provider)
    with provider.management() as session:
        iam.grant_role(session, org.employee.user_id, second.tenant_id, "employee")
        session.commit()
    here, there = sign_in(client, org.employee, org.slug), sign_in(client, org.employee, second.slug)
    admin = sign_in(client, org.admin)
    response = client.post(f"/api/v1/iam/members/{org.employee.user_id}/deactivate", headers=admin.bearer)
    assert response.status_code == 200 and response.json["active"] is False
    _assert_cut_off(client, provider, here)
    # Signing in to the tenant they left, or switching to it, is refused too.
    response = client.post(TOKENS, json={"email": org.employee.email, "password": org.employee.password,
                                         "tenant": org.slug})
    assert_refused(response, 404, "tenant")
    assert_refused(client.post("/api/v1/identity/tenant", json={"tenant": org.slug}, headers=there.bearer),
                   404, "tenant")
    assert client.get(ME, headers=there.bearer).status_code == 200


def test_a_token_for_a_tenant_the_user_left_says_so(client: FlaskClient, provider: DataProvider,
                                                    broker_redis: Redis, org: Org) -> None:
    # Membership ended by a path that revokes no session (a tool, a future "leave" use
    # case): the token is still refused, because IAM no longer counts them as a member.
    tokens = sign_in(client, org.employee)
    assert client.get(ME, headers=tokens.bearer).status_code == 200
    with provider.management() as session:
        iam.set_active(session, org.tenant_id, org.employee.user_id, False, changed_by=None)
        session.commit()
    PermissionCache(broker_redis, 1).invalidate(org.tenant_id)
    body = assert_refused(client.get(ME, headers=tokens.bearer), 401, "Authorization")
    assert body["reason"] == "you are no longer a member of this tenant"


def test_a_deactivated_account_is_refused_everywhere(client: FlaskClient, provider: DataProvider,
                                                     org: Org, operator: Account) -> None:
    tokens, op = sign_in(client, org.employee), sign_in(client, operator)
    response = client.post(f"/api/v1/operations/users/{org.employee.user_id}/deactivate", headers=op.bearer)
    assert response.status_code == 200 and response.json["active"] is False
    _assert_cut_off(client, provider, tokens)
    response = client.post(TOKENS, json={"email": org.employee.email, "password": org.employee.password})
    assert_refused(response, 401, "password")
