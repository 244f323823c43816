"""Fixtures of the browser tests: the real app under gunicorn, and Chromium driven by Playwright.

The app is served exactly as the ``web`` process serves it (``gunicorn -c config/gunicorn.py``)
on the session's stack, over real HTTP on a free port. Chromium is Debian's
(``bin/install-browser`` puts it at /usr/bin/chromium); ``playwright install`` cannot download
browsers here. Every test gets a fresh browser context: no cookies carried between tests.
"""
from __future__ import annotations

import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright
from sqlalchemy import func, select

from domain.db.provider import DataProvider
from domain.iam import services as iam
from domain.identity import services as identity
from domain.identity.models import AuthSession
from domain.tenancy.models import Signup, Tenant
from tests.support import refs
from tests.support.processes import Process
from tests.support.services import Stack
from tests.support.waiting import wait_for
from workers.embedded import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking"]


@dataclass(frozen=True)
class LiveServer:
    """The app served over HTTP: its base URL."""

    url: str


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:  # noqa: S310 - our server
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="session")
def live_server(stack: Stack, log_dir: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``web:create_app()`` under gunicorn (config/gunicorn.py) on the session's stack."""
    port = free_port()
    env = stack.env(VAR_DIR=str(tmp_path_factory.mktemp("browser-var")), WEB_HOST="127.0.0.1",
                    WEB_PORT=str(port), WEB_CONCURRENCY="1", WEB_THREADS="4")
    argv = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "web:create_app()"]
    server = Process("browser-web", argv, env, log_dir).start()
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if not server.running():
            raise AssertionError(f"gunicorn exited:\n{server.log()[-3000:]}")
        return _healthy(url)

    try:
        wait_for(up, timeout=60, message="gunicorn to answer /healthz")
        yield LiveServer(url)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    """Playwright's sync API, started once (it runs its driver in a child process)."""
    with sync_playwright() as started:
        yield started


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless Chromium from Debian's package."""
    assert CHROMIUM.exists(), "Chromium is missing: run bin/install-browser"
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                          headless=True)
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    """A tab in a fresh browser context (no cookies) whose relative URLs go to the live server."""
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(15_000)
    opened = context.new_page()
    yield opened
    context.close()


def count_signups(provider: DataProvider) -> int:
    """Signup rows in the management database (only a signup request inserts one)."""
    with provider.management() as session:
        return session.scalar(select(func.count()).select_from(Signup)) or 0


def tenant_exists(provider: DataProvider, slug: str) -> bool:
    """True if a tenant with ``slug`` was recorded."""
    with provider.management() as session:
        return session.scalar(select(Tenant.id).where(Tenant.slug == slug)) is not None


def count_sessions(provider: DataProvider, user_id: uuid.UUID) -> int:
    """Sessions ever opened for ``user_id`` (a sign-in opens one)."""
    with provider.management() as session:
        return session.scalar(select(func.count()).select_from(AuthSession)
                              .where(AuthSession.user_id == user_id)) or 0


@dataclass(frozen=True)
class Owner:
    """The owner of a trial tenant, made directly in the database."""

    user_id: uuid.UUID
    email: str
    password: str
    slug: str


def make_owner(provider: DataProvider) -> Owner:
    """A trial tenant with default roles and an owner who can sign in (no worker needed)."""
    tenant_id, slug, email, password = uuid.uuid4(), refs.slug("browser"), refs.email("owner"), \
        "owner password 0123"
    with provider.management() as session:
        session.add(Tenant(id=tenant_id, slug=slug, name="Browser Co", status="trial", plan="trial"))
        session.flush()
        iam.create_default_roles(session, tenant_id)
        user = identity.create_user(session, email=email, name="Olive Owner",
                                    password_hash=identity.hash_password(password))
        iam.grant_role(session, user.id, tenant_id, "owner")
        session.commit()
        return Owner(user.id, email, password, slug)


def element_after(page: Page, field: str) -> dict[str, str | None]:
    """The element right after the input named ``field``: its class, data-field and text."""
    return page.evaluate(  # type: ignore[no-any-return]
        """(name) => {
            const input = document.querySelector(`[name="${name}"]`);
            const next = input && input.nextElementSibling;
            return next ? {cls: next.className, field: next.dataset.field ?? null,
                           text: next.textContent} : {cls: null, field: null, text: null};
        }""", field)


def remove_csrf_token(page: Page, form: str) -> None:
    """Take the hidden CSRF input out of ``form`` (a selector), as a forged cross-site post
    would lack it."""
    removed = page.evaluate("""(form) => {
        const inputs = document.querySelectorAll(`${form} input[name="csrf_token"]`);
        inputs.forEach((input) => input.remove());
        return inputs.length;
    }""", form)
    assert removed == 1, f"the form carries one CSRF input (found {removed})"
