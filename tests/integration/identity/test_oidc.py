"""Sign-in through an external OpenID Connect provider, against a real provider over HTTP
(tests/support/oidc_provider.py): the API flow, the browser flow (code + PKCE), forged and
misdirected ID tokens, and key rotation. Either way the platform answers with its own tokens.
"""
from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from config.settings import load_settings
from domain.db.provider import DataProvider
from domain.iam import services as iam
from domain.identity import services as identity
from domain.identity.models import AuthSession, ExternalIdentity, User
from domain.identity.oidc import IdTokenVerifier
from tests.integration.identity.conftest import ME, PUBLIC_URL, me
from tests.integration.web.helpers import assert_refused
from tests.support import refs, tenants
from tests.support.apps import web_app
from tests.support.locks import backend_pid, blocked_by
from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider, ProviderUser, new_rsa_key
from tests.support.services import Stack
from tests.support.tenants import create_tenant
from tests.support.waiting import wait_for
from web.identity.oidc import VERIFIER, safe_next
from workers.embedded import free_port

OIDC_TOKENS = "/api/v1/identity/oidc/tokens"
LOGIN = "/identity/oidc/login"
NONCE = "n-" + secrets.token_urlsafe(16)


@pytest.fixture
def person(idp: OidcProvider) -> Iterator[ProviderUser]:
    """A fresh account at the provider (verified email), signed in when it is asked."""
    idp.user = ProviderUser(subject=f"auth0|{secrets.token_hex(8)}", email=refs.email("idp"))
    yield idp.user
    idp.deny, idp.id_token_overrides = False, {}


@dataclass(frozen=True)
class Member:
    """A platform account made in the database, member of ``slugs``."""

    user_id: uuid.UUID
    tenant_ids: list[uuid.UUID]
    slugs: list[str]


def make_member(provider: DataProvider, email: str, tenants: int = 1) -> Member:
    """Commit ``tenants`` trial tenants and an employee of each with ``email`` (no password;
    its address verified, as an accepted invitation leaves it: the provider's person is its
    legitimate owner)."""
    made = [create_tenant(provider, (), prefix="oidc") for _ in range(tenants)]
    with provider.management() as session:
        user = identity.create_user(session, email=email, name="Olive", password_hash=None,
                                    email_verified=True)
        for tenant in made:
            iam.grant_role(session, user.id, tenant.id, "employee")
        session.commit()
        return Member(user.id, [t.id for t in made], [t.slug for t in made])


@dataclass(frozen=True)
class Footprint:
    """What a sign-in by ``person`` could have written."""

    accounts: int
    links: int
    oidc_sessions: int


def footprint(provider: DataProvider, person: ProviderUser) -> Footprint:
    """Accounts with the person's email, links of their subject, OIDC sessions in all."""
    with provider.management() as session:
        return Footprint(
            accounts=session.scalar(select(func.count()).select_from(User).where(
                User.email == identity.normalize_email(person.email or ""))) or 0,
            links=session.scalar(select(func.count()).select_from(ExternalIdentity).where(
                ExternalIdentity.subject == person.subject)) or 0,
            oidc_sessions=session.scalar(select(func.count()).select_from(AuthSession).where(
                AuthSession.method == "oidc")) or 0)


def sign_in_api(client: FlaskClient, id_token: str, nonce: str | None = NONCE, **extra: str) -> Any:
    """Post an ID token to the API."""
    body: dict[str, Any] = {"id_token": id_token, **extra}
    if nonce is not None:
        body["nonce"] = nonce
    return client.post(OIDC_TOKENS, json=body)


# -- API flow --------------------------------------------------------------------------------


def test_an_id_token_gets_platform_tokens_for_the_members_tenant(
        web: FlaskClient, idp: OidcProvider, person: ProviderUser, provider: DataProvider) -> None:
    member = make_member(provider, person.email or "")
    response = sign_in_api(web, idp.mint(NONCE))
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.json["token_type"] == "Bearer" and response.json["refresh_token"]
    assert response.headers["Cache-Control"] == "no-store"
    caller = me(web, response.json["access_token"])
    assert caller["user_id"] == str(member.user_id)
    assert caller["tenant_id"] == str(member.tenant_ids[0])
    linked = footprint(provider, person)
    assert (linked.accounts, linked.links) == (1, 1)
    sessions = web.get("/api/v1/identity/sessions",
                       headers={"Authorization": f"Bearer {response.json['access_token']}"}).json
    assert [s["method"] for s in sessions["items"]] == ["oidc"]


def test_the_platform_refresh_token_works_after_an_oidc_sign_in(
        web: FlaskClient, idp: OidcProvider, person: ProviderUser, provider: DataProvider) -> None:
    make_member(provider, person.email or "")
    tokens = sign_in_api(web, idp.mint(NONCE)).json
    rotated = web.post("/api/v1/identity/tokens/refresh",
                       headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    assert rotated.status_code == 200
    assert me(web, rotated.json["access_token"])["tenant_id"]


def test_a_second_sign_in_uses_the_linked_identity_not_the_email(
        web: FlaskClient, idp: OidcProvider, person: ProviderUser, provider: DataProvider) -> None:
    member = make_member(provider, person.email or "")
    first = sign_in_api(web, idp.mint(NONCE))
    assert me(web, first.json["access_token"])["user_id"] == str(member.user_id)
    # The user changes their email at the provider: the (issuer, subject) link still holds.
    old_email, person.email = person.email, refs.email("changed")
    second = sign_in_api(web, idp.mint(NONCE))
    assert me(web, second.json["access_token"])["user_id"] == str(member.user_id)
    assert footprint(provider, person).accounts == 0  # no account for the new email
    assert footprint(provider, ProviderUser(person.subject, old_email)).links == 1


def test_an_unknown_person_with_a_verified_email_gets_an_account(
        web: FlaskClient, idp: OidcProvider, person: ProviderUser, provider: DataProvider) -> None:
    before = footprint(provider, person)
    response = sign_in_api(web, idp.mint(NONCE))
    assert response.status_code == 200
    # A token for no tenant (the account joins one through an invitation): it works where
    # no tenant is needed, and is refused where one is.
    mine = web.get("/api/v1/identity/sessions",
                   headers={"Authorization": f"Bearer {response.json['access_token']}"})
    assert mine.status_code == 200 and [s["tenant"] for s in mine.json["items"]] == [None]
    assert_refused(web.get(ME, headers={"Authorization": f"Bearer {response.json['access_token']}"}),
                   403, "tenant")
    assert footprint(provider, person) == Footprint(before.accounts + 1, before.links + 1,
                                                    before.oidc_sessions + 1)


def test_a_member_of_several_tenants_chooses_one(
        web: FlaskClient, idp: OidcProvider, person: ProviderUser, provider: DataProvider) -> None:
    member = make_member(provider, person.email or "", tenants=2)
    body = assert_refused(sign_in_api(web, idp.mint(NONCE)), 422, "tenant")
    assert all(slug in body["reason"] for slug in member.slugs)
    chosen = sign_in_api(web, idp.mint(NONCE), tenant=member.slugs[1])
    assert me(web, chosen.json["access_token"])["tenant_id"] == str(member.tenant_ids[1])


def test_an_operators_account_is_not_linked_by_its_address(
        web: FlaskClient, idp: OidcProvider, person: ProviderUser, provider: DataProvider) -> None:
    # Whoever held the operator's address at the provider would have held every tenant, as a
    # password reset link would (operators get none for that reason).
    operator = tenants.create_account(provider, operator=True)
    person.email = operator.email.upper()
    before = footprint(provider, person)
    refused = sign_in_api(web, idp.mint(NONCE))
    assert "password" in assert_refused(refused, 403, "email")["reason"]
    assert footprint(provider, person) == before and before.links == 0
    tenants.sign_in(web, operator)  # their password still signs them in


def test_an_operators_account_linked_before_is_not_signed_in_through_the_link(
        web: FlaskClient, idp: OidcProvider, person: ProviderUser, provider: DataProvider) -> None:
    # Links to operators could only be made by address, before that was refused: they are
    # refused too, and the operator signs in with their password.
    operator = tenants.create_account(provider, operator=True)
    with provider.management() as session:
        session.add(ExternalIdentity(issuer=idp.issuer, subject=person.subject, user_id=operator.user_id))
        session.commit()
    assert_refused(sign_in_api(web, idp.mint(NONCE)), 403, "email")
    tenants.sign_in(web, operator)


@pytest.mark.parametrize("account", ["an existing account", "a new account"])
def test_two_first_sign_ins_at_once_link_one_account(web: FlaskClient, idp: OidcProvider,
                                                     person: ProviderUser, provider: DataProvider,
                                                     account: str) -> None:
    # Two tabs signing in for the first time: the first links (or makes) the account and has
    # not committed yet; the second waits for it, then must use that link, not fail on it (a
    # 500 on the links' primary key, or a 409 on the account's address).
    if account == "an existing account":
        make_member(provider, person.email or "")
    with ThreadPoolExecutor(1) as pool:
        with provider.management() as first:
            linked = identity.link_external_identity(first, issuer=idp.issuer, subject=person.subject,
                                                     email=person.email, email_verified=True, name="Olive")
            pid, management = backend_pid(first), provider.url_of("management")
            second = pool.submit(sign_in_api, web, idp.mint(NONCE))
            wait_for(lambda: second.done() or blocked_by(management, pid) >= 1, timeout=30,
                     message="the second sign-in to wait for the first")
            first.commit()
        answer = second.result(timeout=60)
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    assert tenants.unverified(answer.json["access_token"])["sub"] == str(linked.id)
    assert (footprint(provider, person).accounts, footprint(provider, person).links) == (1, 1)


def _expired(idp: OidcProvider) -> str:
    now = int(time.time())
    return idp.mint(NONCE, claims={"iat": now - 900, "exp": now - 600})


FORGERIES: dict[str, Callable[[OidcProvider], dict[str, Any]]] = {
    "signed by another key under the provider's kid": lambda idp: {
        "id_token": idp.mint(NONCE, key=new_rsa_key(kid=idp.key.kid)), "nonce": NONCE},
    "alg none": lambda idp: {"id_token": idp.mint(NONCE, alg="none"), "nonce": NONCE},
    "HS256 keyed with the provider's public key": lambda idp: {
        "id_token": idp.mint(NONCE, alg="HS256"), "nonce": NONCE},
    "another issuer": lambda idp: {
        "id_token": idp.mint(NONCE, claims={"iss": "https://evil.example.com/"}), "nonce": NONCE},
    "another audience": lambda idp: {
        "id_token": idp.mint(NONCE, claims={"aud": "someone-else"}), "nonce": NONCE},
    "expired": lambda idp: {"id_token": _expired(idp), "nonce": NONCE},
    "nonce mismatch": lambda idp: {"id_token": idp.mint("another-nonce"), "nonce": NONCE},
    "nonce missing from the request": lambda idp: {"id_token": idp.mint(NONCE)},
    "nonce missing from the token": lambda idp: {"id_token": idp.mint(None), "nonce": NONCE},
    "unknown kid": lambda idp: {"id_token": idp.mint(NONCE, header={"kid": "made-up"}), "nonce": NONCE},
    # {"alg": ["RS256"]}, {} and nothing signed: was a 500 (a list is no key of the algorithms)
    "alg a list": lambda idp: {"id_token": "eyJhbGciOlsiUlMyNTYiXX0.e30.AAAA", "nonce": NONCE},
}


@pytest.mark.parametrize("attack", list(FORGERIES))
def test_forged_or_misdirected_id_tokens_are_unauthorized_and_write_nothing(
        web: FlaskClient, idp: OidcProvider, person: ProviderUser, provider: DataProvider,
        attack: str) -> None:
    # The person is unknown with a verified email: accepted, the token would create an account.
    before = footprint(provider, person)
    response = web.post(OIDC_TOKENS, json=FORGERIES[attack](idp))
    body = assert_refused(response, 401, "id_token")
    assert "access_token" not in body
    assert footprint(provider, person) == before
    assert before.accounts == before.links == 0


def test_an_unverified_email_of_an_unknown_subject_is_refused(
        web: FlaskClient, idp: OidcProvider, person: ProviderUser, provider: DataProvider) -> None:
    make_member(provider, person.email or "")  # an account with that email exists
    before = footprint(provider, person)
    response = sign_in_api(web, idp.mint(NONCE, claims={"email_verified": False}))
    assert_refused(response, 401, "email")
    assert footprint(provider, person) == before and before.links == 0


def test_a_body_that_is_not_an_id_token_request_is_refused(web: FlaskClient) -> None:
    assert_refused(web.post(OIDC_TOKENS, json={"id_token": "x", "nonce": NONCE, "role": "owner"}),
                   422, "role")
    assert_refused(web.post(OIDC_TOKENS, json={"nonce": NONCE}), 422, "id_token")
    assert_refused(web.post(OIDC_TOKENS, json={"id_token": "x", "nonce": NONCE, "tenant": "A\x00"}),
                   422, "tenant")


@pytest.fixture
def rotating_idp(oidc_app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[OidcProvider]:
    """A provider of its own whose keys the test rotates, and a fresh verifier for it.

    Its refetch limits are long, so the flood of made-up key ids below is refused whatever
    the machine's speed; other tests' refetches do not count against it.
    """
    rotating = OidcProvider().start()
    monkeypatch.setitem(oidc_app.extensions, VERIFIER, IdTokenVerifier(
        rotating.issuer, CLIENT_ID, cache_seconds=3600, refetch_interval=3600, refetch_gap=3600))
    yield rotating
    rotating.stop()


def test_a_rotated_key_costs_one_jwks_fetch_and_made_up_kids_none(
        web: FlaskClient, rotating_idp: OidcProvider) -> None:
    idp = rotating_idp
    old_key_token = idp.mint(NONCE)
    assert sign_in_api(web, old_key_token).status_code == 200
    before = idp.jwks_fetches
    new_kid = idp.rotate_key()
    new_key_token = idp.mint(NONCE)
    assert unverified_header(new_key_token)["kid"] == new_kid
    response = sign_in_api(web, new_key_token)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert idp.jwks_fetches == before + 1
    assert sign_in_api(web, old_key_token).status_code == 200  # the old key is still published
    for _ in range(25):
        flood = sign_in_api(web, idp.mint(NONCE, header={"kid": secrets.token_hex(8)}))
        assert_refused(flood, 401, "id_token")
    assert idp.jwks_fetches == before + 1


def unverified_header(id_token: str) -> dict[str, Any]:
    """The JOSE header of a token, unchecked."""
    head = id_token.split(".", maxsplit=1)[0]
    return dict(json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))))


# -- browser flow ----------------------------------------------------------------------------


def to_provider(web: FlaskClient, idp: OidcProvider, **query: str) -> str:
    """Start a browser sign-in; the provider URL the app redirects to."""
    response = web.get(LOGIN, query_string=query)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    location = response.headers["Location"]
    assert location.startswith(f"{idp.issuer}/authorize?")
    return location


def through_provider(location: str) -> tuple[str, dict[str, str]]:
    """Follow the redirect at the real provider; the callback path and query it sends back."""
    response = requests.get(location, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text[:500]
    back = urlsplit(response.headers["Location"])
    assert f"{back.scheme}://{back.netloc}" == PUBLIC_URL
    return back.path, dict(parse_qsl(back.query))


def assert_error_page(response: Any, status: int, words: str) -> None:
    """An HTML error page with ``status`` saying ``words``, and no token cookie set."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/html"
    assert words in response.get_data(as_text=True)
    assert not any("access_token_cookie" in c for c in response.headers.getlist("Set-Cookie"))


def test_a_browser_signs_in_through_the_provider_with_pkce(
        web: FlaskClient, idp: OidcProvider, person: ProviderUser, provider: DataProvider) -> None:
    member = make_member(provider, person.email or "")
    location = to_provider(web, idp, next="/identity/sessions")
    asked = dict(parse_qsl(urlsplit(location).query))
    assert asked["code_challenge_method"] == "S256" and asked["code_challenge"]
    assert asked["nonce"] and asked["state"] and "openid" in asked["scope"].split()
    assert asked["redirect_uri"] == f"{PUBLIC_URL}/identity/oidc/callback"
    path, query = through_provider(location)
    response = web.get(path, query_string=query)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    assert response.headers["Location"] == "/identity/sessions"
    exchange = idp.token_requests[-1]
    assert exchange.status == 200 and exchange.form["code_verifier"]  # the provider checked it
    access = web.get_cookie("access_token_cookie")
    assert access is not None and web.get_cookie("refresh_token_cookie", path="/identity/") is not None
    caller = me(web, access.value)
    assert caller["user_id"] == str(member.user_id) and caller["tenant_id"] == str(member.tenant_ids[0])
    page = web.get("/identity/sessions")
    assert page.status_code == 200, page.get_data(as_text=True)[:500]


def test_the_callback_sends_only_to_local_paths(
        web: FlaskClient, idp: OidcProvider, person: ProviderUser) -> None:
    path, query = through_provider(to_provider(web, idp, next="//evil.example.com/x"))
    response = web.get(path, query_string=query)
    assert response.status_code == 303 and response.headers["Location"] == "/"


@pytest.mark.parametrize(("given", "kept"), [
    ("/identity/sessions?x=1", "/identity/sessions?x=1"), ("//evil.example.com", "/"),
    ("https://evil.example.com", "/"), ("/\\evil.example.com", "/"), ("/a\nb", "/"), ("", "/"),
    (None, "/"), ("evil", "/")])
def test_next_is_a_local_path_or_the_front_page(given: str | None, kept: str) -> None:
    assert safe_next(given) == kept


def test_the_provider_refuses_a_wrong_code_verifier_and_a_code_used_twice(
        web: FlaskClient, idp: OidcProvider, person: ProviderUser) -> None:
    location = to_provider(web, idp)
    path, query = through_provider(location)
    redirect_uri = dict(parse_qsl(urlsplit(location).query))["redirect_uri"]
    stolen = requests.post(f"{idp.issuer}/token", auth=(CLIENT_ID, CLIENT_SECRET), timeout=10, data={
        "grant_type": "authorization_code", "code": query["code"], "redirect_uri": redirect_uri,
        "code_verifier": secrets.token_urlsafe(48)})
    assert stolen.status_code == 400 and "code_verifier" in stolen.json()["error_description"]
    # The code was spent by that attempt: the browser's own callback is refused too.
    assert_error_page(web.get(path, query_string=query), 401, "refused")
    assert idp.token_requests[-1].error == "unknown or already used code"


def test_the_client_sends_the_verifier_it_kept(
        web: FlaskClient, idp: OidcProvider, person: ProviderUser) -> None:
    path, query = through_provider(to_provider(web, idp))
    with web.session_transaction() as browser_session:
        key = f"_state_oidc_{query['state']}"
        state = browser_session[key]
        state["data"]["code_verifier"] = secrets.token_urlsafe(48)
        browser_session[key] = state
    assert_error_page(web.get(path, query_string=query), 401, "refused")
    assert idp.token_requests[-1].error == "code_verifier does not match the code_challenge"


def test_a_tampered_state_is_refused(web: FlaskClient, idp: OidcProvider, person: ProviderUser,
                                     provider: DataProvider) -> None:
    path, query = through_provider(to_provider(web, idp))
    requests_before = len(idp.token_requests)
    tampered = {**query, "state": query["state"] + "x"}
    assert_error_page(web.get(path, query_string=tampered), 400, "start again")
    assert_error_page(web.get(path, query_string={"code": query["code"]}), 400, "start again")
    assert len(idp.token_requests) == requests_before  # the code was never sent
    assert footprint(provider, person).accounts == 0


def test_a_callback_replayed_is_refused(web: FlaskClient, idp: OidcProvider, person: ProviderUser) -> None:
    path, query = through_provider(to_provider(web, idp))
    assert web.get(path, query_string=query).status_code == 303
    assert_error_page(web.get(path, query_string=query), 400, "start again")


def test_a_state_from_another_browser_is_refused(oidc_app: Flask, web: FlaskClient, idp: OidcProvider,
                                                 person: ProviderUser) -> None:
    path, query = through_provider(to_provider(web, idp))
    assert_error_page(oidc_app.test_client().get(path, query_string=query), 400, "start again")


def test_a_denied_sign_in_is_an_error_page(web: FlaskClient, idp: OidcProvider, person: ProviderUser) -> None:
    idp.deny = True
    path, query = through_provider(to_provider(web, idp))
    assert query["error"] == "access_denied"
    assert_error_page(web.get(path, query_string=query), 401, "the user said no")


@pytest.mark.parametrize("overrides", [{"aud": "someone-else"}, {"nonce": "not-the-one-sent"},
                                       {"iss": "https://evil.example.com/"}])
def test_a_bad_id_token_from_the_provider_is_an_error_page(
        web: FlaskClient, idp: OidcProvider, person: ProviderUser, provider: DataProvider,
        overrides: dict[str, str]) -> None:
    idp.id_token_overrides = overrides
    path, query = through_provider(to_provider(web, idp))
    assert_error_page(web.get(path, query_string=query), 401, "token")
    assert footprint(provider, person).accounts == 0


def test_a_browser_member_of_several_tenants_starts_again_with_one(
        web: FlaskClient, idp: OidcProvider, person: ProviderUser, provider: DataProvider) -> None:
    member = make_member(provider, person.email or "", tenants=2)
    path, query = through_provider(to_provider(web, idp))
    refused = web.get(path, query_string=query)
    assert_error_page(refused, 422, member.slugs[0])
    assert member.slugs[1] in refused.get_data(as_text=True)
    path, query = through_provider(to_provider(web, idp, tenant=member.slugs[1]))
    assert web.get(path, query_string=query).status_code == 303
    access = web.get_cookie("access_token_cookie")
    assert access is not None and me(web, access.value)["tenant_id"] == str(member.tenant_ids[1])


def test_a_tenant_that_is_not_a_slug_is_refused_before_the_provider(web: FlaskClient,
                                                                    idp: OidcProvider) -> None:
    before = len(idp.authorize_requests)
    assert_error_page(web.get(LOGIN, query_string={"tenant": "Not A Slug"}), 422, "slug")
    assert len(idp.authorize_requests) == before


# -- not configured --------------------------------------------------------------------------


def test_without_a_provider_oidc_sign_in_does_not_exist(client: FlaskClient) -> None:
    body = assert_refused(client.post(OIDC_TOKENS, json={"id_token": "x", "nonce": NONCE}), 404, "id_token")
    assert "not configured" in body["reason"]
    assert_error_page(client.get(LOGIN), 404, "not configured")
    assert_error_page(client.get("/identity/oidc/callback?state=x&code=y"), 404, "not configured")


@pytest.fixture(scope="module")
def unreachable_app(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """An app whose provider does not answer (nothing listens on its port)."""
    port = free_port()
    with web_app(load_settings(stack.env(
            VAR_DIR=str(tmp_path_factory.mktemp("oidc-down")), OIDC_ISSUER=f"http://127.0.0.1:{port}",
            OIDC_CLIENT_ID=CLIENT_ID, OIDC_CLIENT_SECRET=CLIENT_SECRET, PUBLIC_URL=PUBLIC_URL))) as app:
        yield app


def test_a_provider_that_does_not_answer_is_unavailable_not_an_error(unreachable_app: Flask,
                                                                     idp: OidcProvider) -> None:
    client = unreachable_app.test_client()
    body = assert_refused(sign_in_api(client, idp.mint(NONCE)), 503, "id_token")
    assert "cannot fetch" in body["reason"]
    assert_error_page(client.get(LOGIN), 503, "cannot reach the identity provider")
