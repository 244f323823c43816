"""Helpers of the purchases suites: a shop (products, a buying tenant, an operator), buying,
what a request wrote, and the sandbox gateway's own ledger."""
from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from werkzeug.test import TestResponse

from config.settings import Settings, load_settings
from domain.bootstrap import build_provider
from domain.db.provider import DataProvider
from domain.messaging.tables import outbox
from domain.purchases import catalogue
from domain.purchases.catalogue import ProductSpec
from domain.purchases.queries import ProductView
from tests.support import processes, refs, tenants
from tests.support.apps import web_app
from tests.support.pages import Member, signed_in_browser
from tests.support.services import Services, Stack, create_stack, drop_stack
from tests.support.tenants import Account, TenantWithMembers, bearer

PURCHASES = "/api/v1/purchases"
CHECKOUT = "/purchases/checkout"
APPROVE = "4242 4242 4242 4242"
DECLINE = "4000000000000002"
INSUFFICIENT = "4000000000009995"
TRANSIENT = "4000000000000119"
UNAVAILABLE = "4000000000000259"
ANSWER_LOST_ONCE = "4000000000000267"
ANSWER_LOST = "4000000000000275"
# Databases of the suites' private Redis server (a stack takes its number and the next).
PAYMENTS_REDIS_DB = 0
DRILL_REDIS_DB = 2


def add_product(provider: DataProvider, *, kind: str = "addon", price_minor: int = 1500,
                currency: str = "EUR", plan: str | None = None, name: str | None = None) -> ProductView:
    """A committed product with a fresh code."""
    code = refs.slug(kind)
    with provider.management() as session:
        view = catalogue.create_product(session, ProductSpec(
            code=code, name=name or f"Product {code}", kind=kind,
            plan=plan or ("standard" if kind == "plan" else None), price_minor=price_minor,
            currency=currency))
        session.commit()
    return view


def retire(provider: DataProvider, code: str) -> None:
    """Retire a product, committed."""
    with provider.management() as session:
        catalogue.set_active(session, code, False)
        session.commit()


@dataclass(frozen=True)
class Shop:
    """A tenant that buys (owner, admin, employee signed in), the products on sale, an operator."""

    tenant: TenantWithMembers
    tokens: dict[str, str]
    addon: ProductView
    plan: ProductView
    retired: ProductView
    operator: Account
    operator_token: str

    @property
    def admin(self) -> dict[str, str]:
        """The Authorization header of the tenant's admin."""
        return bearer(self.tokens["admin"])

    def body(self, product: ProductView | None = None, **changes: Any) -> dict[str, Any]:
        """A valid purchase body for ``product`` (the add-on by default) at its price."""
        product = product or self.addon
        return {"product_code": product.code, "amount_minor": product.price_minor,
                "currency": product.currency, "card_number": APPROVE, **changes}


def open_shop(client: FlaskClient, provider: DataProvider) -> Shop:
    """A new tenant with an owner, an admin and an employee, products, and an operator."""
    tenant = tenants.create_tenant(provider, ("owner", "admin", "employee"), prefix="buyer")
    tokens = {role: tenants.access_token(client, tenant.member(role), tenant.slug)
              for role in ("owner", "admin", "employee")}
    operator = tenants.create_account(provider, operator=True)
    retired = add_product(provider, price_minor=900)
    retire(provider, retired.code)
    return Shop(tenant, tokens, add_product(provider), add_product(provider, kind="plan", price_minor=4900),
                retired, operator, tenants.access_token(client, operator))


def buy(client: FlaskClient, shop: Shop, body: dict[str, Any], key: str | None = None,
        headers: dict[str, str] | None = None) -> Any:
    """POST a purchase as the shop's admin with ``key`` as its Idempotency-Key (fresh if None)."""
    return client.post(PURCHASES, json=body, headers={
        **shop.admin, "Idempotency-Key": key or str(uuid.uuid4()), **(headers or {})})


@dataclass(frozen=True)
class Written:
    """What a purchase request can write: the tenant's purchases and their charge commands,
    and the outbox rows carrying the request's id."""

    purchases: int
    charges: int
    messages: int


def written(provider: DataProvider, tenant_id: uuid.UUID, request_id: str = "") -> Written:
    """Count the tenant's purchases, its ChargePurchase messages and the request's messages."""
    with provider.management() as session:
        return Written(
            purchases=session.scalar(text("SELECT count(*) FROM purchases WHERE tenant_id = :t"),
                                     {"t": tenant_id}) or 0,
            charges=session.scalar(select(func.count()).select_from(outbox).where(
                outbox.c.tenant_id == tenant_id, outbox.c.type == "purchases.ChargePurchase")) or 0,
            messages=session.scalar(select(func.count()).select_from(outbox).where(
                outbox.c.correlation_id == request_id)) or 0,
        )


@dataclass(frozen=True)
class SandboxCharge:
    """One row of the sandbox gateway's own ledger."""

    id: str
    status: str
    amount_minor: int
    attempts: int


def sandbox_charges(provider: DataProvider, purchase_id: str | uuid.UUID) -> list[SandboxCharge]:
    """The sandbox's charges under the purchase's key, with the attempts made with that key."""
    with provider.management() as session:
        rows = session.execute(text(
            "SELECT c.id, c.status, c.amount_minor, a.attempts FROM sandbox_charges c"
            " JOIN sandbox_attempts a USING (idempotency_key) WHERE c.idempotency_key = :key"),
            {"key": str(purchase_id)}).all()
    return [SandboxCharge(*row) for row in rows]


def sandbox_attempts(provider: DataProvider, key: str | uuid.UUID) -> int:
    """How many charge requests the sandbox received with ``key``."""
    with provider.management() as session:
        return session.scalar(text("SELECT attempts FROM sandbox_attempts WHERE idempotency_key = :k"),
                              {"k": str(key)}) or 0


# --- the checkout page, as a browser uses it -------------------------------------------------

def hidden(page: str, name: str) -> str:
    """The value of the form input ``name`` on ``page``."""
    match = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', page)
    assert match, f"the page has an input {name}"
    return unescape(match.group(1))


def offer_of(page: str, code: str) -> str:
    """The radio value offering product ``code`` at the price shown."""
    match = re.search(rf'name="offer"[^>]*value="({re.escape(code)}\|[^"]*)"', page)
    assert match, f"the page offers {code}"
    return unescape(match.group(1))


def browser_of(app: Flask, shop: Shop, role: str = "admin") -> FlaskClient:
    """A browser signed in (through the form) as the shop's ``role``."""
    account = shop.tenant.member(role)
    return signed_in_browser(app, Member(account.email, account.user_id, shop.tenant.id, shop.tenant.slug))


def form_of(browser: FlaskClient, code: str, card: str = APPROVE) -> dict[str, str]:
    """A freshly rendered checkout filled in for ``code``."""
    page = browser.get(CHECKOUT)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    return {"csrf_token": hidden(text, "csrf_token"), "idempotency_key": hidden(text, "idempotency_key"),
            "offer": offer_of(text, code), "card_number": card}


def purchase_of(response: TestResponse) -> str:
    """The purchase a successful checkout redirected to."""
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    match = re.fullmatch(r"/purchases/([0-9a-f-]{36})", response.location)
    assert match, response.location
    return match.group(1)


@dataclass(frozen=True)
class PrivateStack:
    """A stack no other test shares: fresh databases, a Redis server of its own, the web app
    and a data provider on them, and where its worker processes write their logs."""

    stack: Stack
    env: dict[str, str]
    settings: Settings
    provider: DataProvider
    app: Flask
    logs: Path

    def worker(self, name: str, queues: str, concurrency: int = 2) -> processes.Process:
        """A real ``celery worker`` on this stack, started and consuming."""
        return processes.celery_worker(name, queues, self.env, self.logs, concurrency)


@contextlib.contextmanager
def private_stack(services: Services, redis_url: str, redis_db: int, root: Path,
                  app_config: dict[str, Any] | None = None, **env: str) -> Iterator[PrivateStack]:
    """A stack of its own under ``root``, its broker on databases ``redis_db`` and the next of
    the Redis server at ``redis_url``: for tests whose workers must not take (or lose)
    messages of other tests' stacks, whichever pytest-xdist process runs them."""
    stack = create_stack(Services(services.server_url, redis_url), redis_db=redis_db)
    try:
        environ = stack.env(VAR_DIR=str(root / "var"), **env)
        settings = load_settings(environ)
        provider = build_provider(settings)
        (root / "logs").mkdir(exist_ok=True)
        try:
            with web_app(settings, **(app_config or {})) as app:
                yield PrivateStack(stack, environ, settings, provider, app, root / "logs")
        finally:
            provider.dispose()
    finally:
        drop_stack(stack)


@dataclass(frozen=True)
class Payments:
    """A private stack with real workers of the pools a purchase goes through: ``purchases``,
    the ``default`` pool (billing, relay) and ``notifications``."""

    private: PrivateStack
    workers: dict[str, processes.Process]
