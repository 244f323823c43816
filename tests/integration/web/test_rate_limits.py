"""Rate limits on sign-in and sign-up (web/ratelimit.py), on an app with tight limits.

Each test makes its requests from its own made-up client addresses (``REMOTE_ADDR``), so the
per-address counters of one test never see another's requests; accounts are fresh too. The
counters live in the stack's Redis, as they do in production.
"""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from limits import parse_many
from limits.storage import MemoryStorage, storage_from_string
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from config.settings import Settings, load_settings
from domain.db.provider import DataProvider
from domain.held_redis import HeldRedis
from domain.iam.models import Invitation
from domain.identity import services as identity
from domain.identity.models import AuthSession, User
from tests.integration.messaging.helpers import tenant_id_of
from tests.integration.web.helpers import assert_refused, written
from tests.support import processes, refs, tenants
from tests.support.apps import web_app
from tests.support.services import Stack
from tests.support.system import Reply, http
from tests.support.tenants import page_csrf
from web.ratelimit import Policy, RateLimited, RateLimits

TOKENS = "/api/v1/identity/tokens"
SIGNUPS = "/api/v1/tenancy/signups"
FORM = "/tenancy/signup"
SIGN_IN_FORM = "/identity/sign-in"
PASSWORD = "member password 0123"
WRONG = "not the password 0123"
LIMITS = {"RATE_LIMIT_SIGN_IN": "3 per minute", "RATE_LIMIT_SIGN_UP": "2 per minute",
          "RATE_LIMIT_INVITATIONS": "2 per minute"}


@pytest.fixture(scope="module")
def tight_env(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The stack's environment with limits a test can reach in a few requests."""
    return stack.env(VAR_DIR=str(tmp_path_factory.mktemp("ratelimit-var")), **LIMITS)


@pytest.fixture(scope="module")
def tight_app(tight_env: dict[str, str]) -> Iterator[Flask]:
    """The web app with 3 sign-ins and 2 sign-ups per minute, per account and per address."""
    with web_app(load_settings(tight_env)) as app:
        yield app


@pytest.fixture
def client(tight_app: Flask) -> FlaskClient:
    """A client of the tight app (it keeps its session cookie for the form's CSRF token)."""
    return tight_app.test_client()


def sign_in(client: FlaskClient, email: str, password: str, ip: str) -> TestResponse:
    """POST the sign-in API from ``ip``."""
    return client.post(TOKENS, json={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": ip})


def sign_up_api(client: FlaskClient, body: dict[str, str], ip: str) -> TestResponse:
    """POST the sign-up API from ``ip``."""
    return client.post(SIGNUPS, json=body, environ_base={"REMOTE_ADDR": ip})


def post_form(client: FlaskClient, path: str, fields: dict[str, str], ip: str) -> TestResponse:
    """GET the form (not limited) for its CSRF token, then POST it from ``ip``."""
    token = page_csrf(client, path, environ_base={"REMOTE_ADDR": ip})
    return client.post(path, data={**fields, "csrf_token": token}, environ_base={"REMOTE_ADDR": ip})


def sign_up_form(client: FlaskClient, body: dict[str, str], ip: str) -> TestResponse:
    """Sign up through the HTML form from ``ip``."""
    return post_form(client, FORM, body, ip)


def sign_in_form(client: FlaskClient, email: str, password: str, ip: str) -> TestResponse:
    """Sign in through the HTML form from ``ip``."""
    return post_form(client, SIGN_IN_FORM, {"email": email, "password": password}, ip)


def retry_after(response: Any) -> int:
    """The Retry-After header: whole seconds, more than none and at most the window."""
    value = response.headers.get("Retry-After")
    assert value is not None and value.isdigit(), response.headers
    assert 0 < int(value) <= 60, value
    return int(value)


def sessions_of(provider: DataProvider, email: str) -> int:
    """Sessions ever opened for the account with ``email``."""
    with provider.management() as session:
        return session.scalar(select(func.count()).select_from(AuthSession).join(
            User, User.id == AuthSession.user_id).where(User.email == email)) or 0


def assert_limited_by_account(response: TestResponse) -> None:
    """A 429 that names the account's field and says when to come back."""
    body = assert_refused(response, 429, "email")
    assert "account" in body["reason"]
    retry_after(response)


def assert_page_limited_by_account(response: TestResponse) -> None:
    """The HTML form's 429: a page naming the account's field, with Retry-After."""
    assert response.status_code == 429
    retry_after(response)
    page = response.get_data(as_text=True)
    assert "<strong>email</strong>" in page and "account" in page


def assert_limited_by_address(response: TestResponse) -> None:
    """A 429 about the client address (no field) that says when to come back."""
    body = assert_refused(response, 429, None)
    assert "address" in body["reason"]
    retry_after(response)


def test_the_fourth_failed_sign_in_for_an_account_is_refused_from_any_address(
        client: FlaskClient, provider: DataProvider) -> None:
    email = tenants.create_account(provider, password=PASSWORD).email
    for _ in range(3):  # a new address each time: only the account can be counting
        assert_refused(sign_in(client, email, WRONG, refs.client_ip()), 401, "password")
    assert_limited_by_account(sign_in(client, email, WRONG, refs.client_ip()))
    # Locked, even with the right password: the guess is not checked, no session is opened.
    assert_limited_by_account(sign_in(client, email, PASSWORD, refs.client_ip()))
    assert sessions_of(provider, email) == 0
    # Another account is not affected by this one's lock.
    other = tenants.create_account(provider, password=PASSWORD).email
    assert sign_in(client, other, PASSWORD, refs.client_ip()).status_code == 200


# Ways of writing one address that the sign-in reads as that address (pydantic's EmailStr).
SPELLINGS = {
    "display name": lambda email: f"Someone <{email}>",
    "capitals": str.upper,
    "full-width domain": lambda email: email.split("@")[0] + "@" + "".join(
        chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in email.split("@")[1]),
}


@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_another_spelling_of_the_address_is_the_same_account(client: FlaskClient, provider: DataProvider,
                                                             spelling: str) -> None:
    email = tenants.create_account(provider, password=PASSWORD).email
    written = SPELLINGS[spelling](email)
    assert written != email
    # The spelling signs in as the account: it is the same address to the sign-in.
    assert sign_in(client, written, PASSWORD, refs.client_ip()).status_code == 200
    for _ in range(3):
        assert_refused(sign_in(client, email, WRONG, refs.client_ip()), 401, "password")
    # Its counter is the account's: refused like the address itself, right password or not.
    assert_limited_by_account(sign_in(client, written, WRONG, refs.client_ip()))
    assert_limited_by_account(sign_in(client, written, PASSWORD, refs.client_ip()))
    assert sessions_of(provider, email) == 1


def test_the_punycode_spelling_of_a_domain_is_the_same_account(client: FlaskClient,
                                                                provider: DataProvider) -> None:
    # The view reads a@xn--bcher-kva.example as a@bücher.example: one account, one counter.
    local = f"idn-{secrets.token_hex(4)}"
    with provider.management() as session:
        identity.create_user(session, email=f"{local}@bücher.example", name="IDN",
                             password_hash=tenants.password_hash(PASSWORD), email_verified=True)
        session.commit()
    unicode, punycode = f"{local}@bücher.example", f"{local}@xn--bcher-kva.example"
    assert sign_in(client, punycode, PASSWORD, refs.client_ip()).status_code == 200
    for _ in range(3):
        assert_refused(sign_in(client, unicode, WRONG, refs.client_ip()), 401, "password")
    assert_limited_by_account(sign_in(client, punycode, PASSWORD, refs.client_ip()))


def test_password_guesses_on_a_verification_link_count_against_its_account(
        client: FlaskClient, provider: DataProvider) -> None:
    # The page asks for the password of the link's account, and has no email field: its
    # guesses count on that account's sign-in counters, whatever the address they come from.
    account = tenants.create_account(provider, password=PASSWORD, email_verified=False)
    with provider.management() as session:
        _, token = identity.start_email_verification(session, account.user_id, timedelta(hours=1))
        session.commit()

    def verify(password: str) -> TestResponse:
        ip = refs.client_ip()
        csrf = page_csrf(client, f"/identity/verify/{token}", environ_base={"REMOTE_ADDR": ip})
        return client.post(f"/identity/verify/{token}", data={"csrf_token": csrf, "password": password},
                           environ_base={"REMOTE_ADDR": ip})

    for _ in range(3):
        assert verify(WRONG).status_code == 401
    refused = verify(PASSWORD)  # the right one, once the account is locked
    assert_page_limited_by_account(refused)
    assert_limited_by_account(sign_in(client, account.email, PASSWORD, refs.client_ip()))
    with provider.management() as session:
        assert session.scalar(select(User.email_verified_at).where(User.id == account.user_id)) is None


PASSWORD_API, PASSWORD_FORM = "/api/v1/identity/password", "/identity/password"
NEW_PASSWORD = "a brand new password 0123"


def change_password(client: FlaskClient, app: Flask, via: str, access: str, *, current: str,
                    ip: str) -> TestResponse:
    """Change the password from ``ip`` through the API (bearer) or the page (cookie, CSRF)."""
    fields = {"current_password": current, "new_password": NEW_PASSWORD}
    if via == "api":
        return client.post(PASSWORD_API, json=fields, headers=tenants.bearer(access),
                           environ_base={"REMOTE_ADDR": ip})
    client.set_cookie(app.config["JWT_ACCESS_COOKIE_NAME"], access)
    token = page_csrf(client, "/identity/sessions", environ_base={"REMOTE_ADDR": ip})
    return client.post(PASSWORD_FORM, data={**fields, "csrf_token": token}, environ_base={"REMOTE_ADDR": ip})


@pytest.mark.parametrize("fourth", ["api", "form"])
def test_the_fourth_wrong_current_password_is_refused_whatever_the_address(
        client: FlaskClient, tight_app: Flask, provider: DataProvider, fourth: str) -> None:
    # A stolen access token, and guesses at the password behind it from many addresses.
    account = tenants.create_account(provider, password=PASSWORD)
    access = sign_in(client, account.email, PASSWORD, refs.client_ip()).json["access_token"]
    for _ in range(3):
        assert_refused(change_password(client, tight_app, "api", access, current=WRONG, ip=refs.client_ip()),
                       422, "current_password")
    refused = change_password(client, tight_app, fourth, access, current=PASSWORD, ip=refs.client_ip())
    assert refused.status_code == 429 and retry_after(refused) > 0
    if fourth == "api":
        assert "account" in assert_refused(refused, 429, "current_password")["reason"]
    else:
        assert "<strong>current_password</strong>" in refused.get_data(as_text=True)
    # The right password, guessed or not, changed nothing: the old one still signs in.
    assert sign_in(client, account.email, PASSWORD, refs.client_ip()).status_code == 200
    # Another user's attempts have a counter of their own.
    other = tenants.create_account(provider, password=PASSWORD)
    other_access = sign_in(client, other.email, PASSWORD, refs.client_ip()).json["access_token"]
    changed = change_password(client, tight_app, "api", other_access, current=PASSWORD, ip=refs.client_ip())
    assert changed.status_code == 200, changed.get_data(as_text=True)[:300]


INVITATIONS, INVITE_FORM = "/api/v1/iam/invitations", "/iam/users/invite"


def invitations_of(provider: DataProvider, tenant_id: Any) -> int:
    """Invitations ever recorded for the tenant."""
    with provider.management() as session:
        return session.scalar(select(func.count()).select_from(Invitation).where(
            Invitation.tenant_id == tenant_id)) or 0


def test_a_tenant_sends_only_so_many_invitations(client: FlaskClient, tight_app: Flask,
                                                 provider: DataProvider) -> None:
    tenant = tenants.create_tenant(provider, ("owner", "admin"))
    owner, admin = (sign_in(client, tenant.member(role).email, tenant.member(role).password, refs.client_ip())
                    .json["access_token"] for role in ("owner", "admin"))
    for token in (owner, admin):  # two people of one tenant, from two addresses
        invited = client.post(INVITATIONS, json={"email": refs.email("invitee"), "role": "employee"},
                              headers=tenants.bearer(token), environ_base={"REMOTE_ADDR": refs.client_ip()})
        assert invited.status_code == 202, invited.get_data(as_text=True)[:300]
    refused = client.post(INVITATIONS, json={"email": refs.email("invitee"), "role": "employee"},
                          headers=tenants.bearer(owner), environ_base={"REMOTE_ADDR": refs.client_ip()})
    assert "organisation" in assert_refused(refused, 429, "email")["reason"]
    assert retry_after(refused) > 0
    # The users page's form counts on the same counter.
    client.set_cookie(tight_app.config["JWT_ACCESS_COOKIE_NAME"], admin)
    page = client.post(INVITE_FORM, data={"email": refs.email("invitee"), "role": "employee",
                                          "csrf_token": page_csrf(client, "/iam/users")})
    assert page.status_code == 429 and "<strong>email</strong>" in page.get_data(as_text=True)
    assert invitations_of(provider, tenant.id) == 2
    # Another tenant invites as before.
    other = tenants.create_tenant(provider, ("owner",))
    other_token = sign_in(client, other.member("owner").email, other.member("owner").password,
                          refs.client_ip()).json["access_token"]
    invited = client.post(INVITATIONS, json={"email": refs.email("invitee"), "role": "employee"},
                          headers=tenants.bearer(other_token), environ_base={"REMOTE_ADDR": refs.client_ip()})
    assert invited.status_code == 202, invited.get_data(as_text=True)[:300]


def test_one_address_is_limited_across_accounts(client: FlaskClient) -> None:
    ip = refs.client_ip()
    for _ in range(3):
        assert_refused(sign_in(client, refs.email("guess"), WRONG, ip), 401, "password")
    assert_limited_by_address(sign_in(client, refs.email("guess"), WRONG, ip))
    # The same account from elsewhere is still let through: the address is what is limited.
    assert_refused(sign_in(client, refs.email("guess"), WRONG, refs.client_ip()), 401, "password")


def new_ipv6_network() -> str:
    """A /64 no other request of the run has used (as its first 64 bits, with a colon)."""
    return "2001:db8:" + ":".join(f"{secrets.randbelow(65536):x}" for _ in range(2)) + ":"


def test_an_ipv6_client_is_limited_by_its_64_bit_network(client: FlaskClient) -> None:
    network = new_ipv6_network()
    for host in ("1", "2", "3"):  # three addresses of one subscriber
        assert_refused(sign_in(client, refs.email("guess"), WRONG, f"{network}:{host}"), 401, "password")
    assert_limited_by_address(sign_in(client, refs.email("guess"), WRONG, f"{network}:abcd:1234:9"))
    assert_refused(sign_in(client, refs.email("guess"), WRONG, f"{new_ipv6_network()}:1"), 401, "password")


def test_successful_sign_ins_do_not_count_against_the_account(client: FlaskClient,
                                                              provider: DataProvider) -> None:
    email = tenants.create_account(provider, password=PASSWORD).email
    for _ in range(5):
        assert sign_in(client, email, PASSWORD, refs.client_ip()).status_code == 200
    for _ in range(3):  # had the successes counted, the first of these would be refused
        assert_refused(sign_in(client, email, WRONG, refs.client_ip()), 401, "password")
    assert_limited_by_account(sign_in(client, email, WRONG, refs.client_ip()))
    assert sessions_of(provider, email) == 5


def test_successful_sign_ins_count_against_the_address(client: FlaskClient,
                                                       provider: DataProvider) -> None:
    email, ip = tenants.create_account(provider, password=PASSWORD).email, refs.client_ip()
    for _ in range(3):
        assert sign_in(client, email, PASSWORD, ip).status_code == 200
    assert_limited_by_address(sign_in(client, email, PASSWORD, ip))
    assert sessions_of(provider, email) == 3


@pytest.mark.parametrize("fourth", ["api", "form"])
def test_the_sign_in_api_and_form_share_the_account_counter(
        client: FlaskClient, provider: DataProvider, fourth: str) -> None:
    email = tenants.create_account(provider, password=PASSWORD).email
    assert_refused(sign_in(client, email, WRONG, refs.client_ip()), 401, "password")
    assert sign_in_form(client, email, WRONG, refs.client_ip()).status_code == 401
    assert_refused(sign_in(client, email, WRONG, refs.client_ip()), 401, "password")
    if fourth == "api":
        assert_limited_by_account(sign_in(client, email, PASSWORD, refs.client_ip()))
    else:
        assert_page_limited_by_account(sign_in_form(client, email.upper(), PASSWORD, refs.client_ip()))
    assert sessions_of(provider, email) == 0


@pytest.mark.parametrize("order", [("api", "form", "api"), ("form", "api", "form")],
                         ids=["api-form-api", "form-api-form"])
def test_the_sign_up_api_and_form_share_the_account_counter(
        client: FlaskClient, provider: DataProvider, order: tuple[str, str, str]) -> None:
    email = refs.email("admin")
    send = {"api": sign_up_api, "form": sign_up_form}
    first, second, third = order
    assert send[first](client, refs.signup_body(email=email), refs.client_ip()).status_code in (202, 303)
    # Second attempt with the same email: refused as taken (409), and still counted.
    assert send[second](client, refs.signup_body(email=email), refs.client_ip()).status_code == 409
    before = written(provider, "")
    # Third, from a third address and in capitals: the account's counter is full.
    body = refs.signup_body(email=email.upper())
    response = send[third](client, body, refs.client_ip())
    if third == "api":
        assert_limited_by_account(response)
    else:  # the form's refusal is a page naming the field
        assert_page_limited_by_account(response)
    after = written(provider, "")
    assert (after.tenants, after.signups) == (before.tenants, before.signups)
    assert tenant_id_of(provider, body["slug"]) is None


def test_a_refused_sign_up_writes_nothing(client: FlaskClient, provider: DataProvider) -> None:
    ip = refs.client_ip()
    for _ in range(2):
        assert sign_up_api(client, refs.signup_body(), ip).status_code == 202
    before = written(provider, "")
    body = refs.signup_body()
    response = client.post(SIGNUPS, json=body, environ_base={"REMOTE_ADDR": ip},
                           headers={"X-Request-Id": (request_id := refs.slug("req"))})
    assert_limited_by_address(response)
    after = written(provider, request_id)
    assert (after.tenants, after.signups, after.messages) == (before.tenants, before.signups, 0)
    assert tenant_id_of(provider, body["slug"]) is None


def test_counters_are_kept_under_the_keys_of_the_previous_release(client: FlaskClient,
                                                                    settings: Settings) -> None:
    # The keys Flask-Limiter wrote: a deploy keeps counting where the old processes left off.
    ip = refs.client_ip()
    assert sign_up_api(client, refs.signup_body(), ip).status_code == 202
    counters = redis.Redis.from_url(settings.broker_url)
    key = f"LIMITS:LIMITER/allotment:ratelimit/{ip}/sign-up:ip/2/1/minute"
    assert (counters.get(key), 0 < counters.ttl(key) <= 60) == (b"1", True)
    counters.close()


@pytest.fixture(scope="module")
def app_without_counters(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """The tight app whose rate-limit Redis cannot be reached (nothing listens on port 1)."""
    env = stack.env(VAR_DIR=str(tmp_path_factory.mktemp("ratelimit-dead-var")),
                    RATE_LIMIT_STORAGE_URL="redis://127.0.0.1:1/0", **LIMITS)
    with web_app(load_settings(env)) as app:
        yield app


def test_without_redis_the_limits_are_counted_in_memory(app_without_counters: Flask,
                                                        provider: DataProvider) -> None:
    client = app_without_counters.test_client()
    ip = refs.client_ip()
    for _ in range(2):
        assert sign_up_api(client, refs.signup_body(), ip).status_code == 202
    assert_limited_by_address(sign_up_api(client, refs.signup_body(), ip))
    email = tenants.create_account(provider, password=PASSWORD).email
    for _ in range(3):
        assert_refused(sign_in(client, email, WRONG, refs.client_ip()), 401, "password")
    assert_limited_by_account(sign_in(client, email, PASSWORD, refs.client_ip()))


# --- Two processes on one Redis --------------------------------------------------------------

@pytest.fixture(scope="module")
def other_process(tight_env: dict[str, str], log_dir: Path) -> Iterator[str]:
    """The same tight app in another process (gunicorn), on the same Redis; its base URL."""
    server, url = processes.gunicorn("ratelimit-web", tight_env, log_dir)
    yield url
    server.stop()


def sign_in_over_http(url: str, email: str, password: str) -> Reply:
    """Sign in through the other process."""
    return http(f"{url}{TOKENS}", method="POST", body={"email": email, "password": password}, timeout=30)


def test_two_processes_count_on_the_same_counters(client: FlaskClient, provider: DataProvider,
                                                   other_process: str) -> None:
    # Failures seen by the other process count here...
    email = tenants.create_account(provider, password=PASSWORD).email
    assert_refused(sign_in(client, email, WRONG, refs.client_ip()), 401, "password")
    assert_refused(sign_in(client, email, WRONG, refs.client_ip()), 401, "password")
    reply = sign_in_over_http(other_process, email, WRONG)
    assert (reply.status, reply.json()["field"]) == (401, "password")
    assert_limited_by_account(sign_in(client, email, WRONG, refs.client_ip()))
    # ...and failures seen here count there (in-memory counters would let this one through).
    email = tenants.create_account(provider, password=PASSWORD).email
    for _ in range(3):
        assert_refused(sign_in(client, email, WRONG, refs.client_ip()), 401, "password")
    reply = sign_in_over_http(other_process, email, PASSWORD)
    assert (reply.status, reply.json()["field"]) == (429, "email"), reply.body
    retry_after(reply)
    assert sessions_of(provider, email) == 0


# --- The one-round-trip script against the limits library --------------------------------------

@pytest.mark.parametrize("held", [True, False], ids=["held-connection", "storage-client"])
def test_the_redis_script_counts_as_the_limits_library_does(settings: Settings, held: bool) -> None:
    # The same attempts through the Lua script (Redis) and through the ``limits`` library's
    # own fixed-window strategy (memory): same refusals, same counts left in every counter.
    # The script runs on a connection the thread holds (a plain Redis URL, as init_app
    # does) or through the storage's own client (a Sentinel or Cluster storage).
    connection = HeldRedis(settings.broker_url, socket_timeout=2, socket_connect_timeout=2) if held else None
    redis_limits = RateLimits(storage_from_string(settings.broker_url), connection)
    library_limits = RateLimits(MemoryStorage())  # not Redis: the library's strategy, call by call
    items = tuple(parse_many("2 per minute; 3 per hour"))
    sign_in = Policy(items, "sign-in:account", "sign-in:ip", account_only_on_failure=True)
    sign_up = Policy(items, "sign-up:account", "sign-up:ip", account_only_on_failure=False)
    run = secrets.token_hex(4)
    ip, other_ip = f"ip-{run}", f"other-ip-{run}"
    attempts = [(sign_up, "a", ip), (sign_up, "b", ip), (sign_up, "a", other_ip), (sign_up, "c", ip),
                (sign_up, "a", other_ip), (sign_up, "a", other_ip), (sign_in, "a", ip),
                (sign_in, "a", ip), (sign_in, "a", ip), (sign_in, "b", other_ip)]
    outcomes = []
    for policy, account, address in attempts:
        counters = policy.counters(f"account:{run}-{account}", address)
        for limits in (redis_limits, library_limits):
            try:
                limits.apply(counters)
                outcome: tuple[str, int] | None = None
            except RateLimited as refusal:
                outcome = (refusal.scope, refusal.index)
            # A failed sign-in counts against the account afterwards, as the views do.
            limits.apply([c.counting() for c in counters if c.mode == "test"])
            outcomes.append(outcome)
    assert outcomes[0::2] == outcomes[1::2]
    assert any(outcomes)  # the scenario does reach the limits
    redis_storage, memory_storage = redis_limits._storage, library_limits._storage
    for policy, account, address in attempts:
        for counter in policy.counters(f"account:{run}-{account}", address):
            key = counter.storage_key()
            assert redis_storage.get(key) == memory_storage.get(key), key
