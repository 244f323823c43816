"""Fixtures of the browser tests: the real app under gunicorn, and Chromium driven by Playwright.

The app is served exactly as the ``web`` process serves it (``gunicorn -c config/gunicorn.py``)
on the session's stack, over real HTTP on a free port. Chromium is Debian's
(``bin/install-browser`` puts it at /usr/bin/chromium); ``playwright install`` cannot download
browsers here. Every test gets a fresh browser context: no cookies carried between tests.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright
from sqlalchemy import func, select

from domain.db.provider import DataProvider
from domain.identity.models import AuthSession
from domain.tenancy.models import Signup, Tenant
from tests.support import processes, tenants
from tests.support.services import Stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking"]


@dataclass(frozen=True)
class LiveServer:
    """The app served over HTTP: its base URL."""

    url: str


@pytest.fixture(scope="session")
def live_server(stack: Stack, log_dir: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``web:create_app()`` under gunicorn (config/gunicorn.py) on the session's stack."""
    env = stack.env(VAR_DIR=str(tmp_path_factory.mktemp("browser-var")))
    server, url = processes.gunicorn("browser-web", env, log_dir, threads=4)
    yield LiveServer(url)
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
    tenant = tenants.create_tenant(provider, ("owner",), prefix="browser", password="owner password 0123")
    owner = tenant.member("owner")
    return Owner(owner.user_id, owner.email, owner.password, tenant.slug)


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
