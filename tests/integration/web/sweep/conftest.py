"""The sweeps' app and world: built once for the package (under pytest-xdist, once per
process that runs a sweep test)."""
from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from sqlalchemy import text

from config.settings import Settings
from domain.db.provider import DataProvider
from domain.purchases import catalogue
from domain.purchases import services as purchases
from domain.purchases.catalogue import ProductSpec
from domain.purchases.sandbox import SandboxGateway
from domain.purchases.services import PurchaseRequest
from tests.support import tenants
from tests.support.apps import web_app
from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider, ProviderUser
from tests.support.services import REDIS_DB_METRICS_IDLE, Services
from tests.support.sweep import (
    SES_FEEDBACK_TOKEN,
    Browsing,
    Call,
    Footprint,
    World,
    make_employee,
    short_hex,
)
from tests.support.tenants import TenantWithMembers, page_csrf


@pytest.fixture(scope="package")
def idp() -> Iterator[OidcProvider]:
    """An OpenID Connect provider for the sweeps (the ID-token route checks bodies instead of
    answering "not configured")."""
    started = OidcProvider().start()
    yield started
    started.stop()


@pytest.fixture(scope="package")
def sweep_app(settings: Settings, services: Services, idp: OidcProvider) -> Iterator[Flask]:
    """The app on the session's stack, with the provider, sending to a broker nobody consumes."""
    broker = f"{services.redis_url}/{REDIS_DB_METRICS_IDLE}"
    idle = redis.Redis.from_url(broker)
    idle.flushdb()
    with web_app(settings.model_copy(update={
            "broker_url": broker, "result_backend": broker, "oidc_issuer": idp.issuer,
            "oidc_client_id": CLIENT_ID, "oidc_client_secret": CLIENT_SECRET,
            "ses_feedback_token": SES_FEEDBACK_TOKEN})) as app:
        yield app
    idle.flushdb()
    idle.close()


@pytest.fixture(scope="package")
def world(sweep_app: Flask, provider: DataProvider, idp: OidcProvider) -> Iterator[World]:
    """The sweep's tenant (an owner, an employee who signs in, the provider's person), an
    operator, the victim tenant, a product, a settled purchase of each tenant, two employees."""
    client = sweep_app.test_client()
    tenant = tenants.create_tenant(provider, ("owner", "employee"), prefix="sweep")
    person = tenants.add_member(provider, tenant.id, "employee")
    idp.user = ProviderUser(subject=f"auth0|{secrets.token_hex(8)}", email=person.email)
    victim = tenants.create_tenant(provider, ("owner",), prefix="victim")
    operator = tenants.create_account(provider, operator=True)
    code = f"sweep-plan-{short_hex()}"
    with provider.management() as session:
        catalogue.create_product(session, ProductSpec(code, "Sweep plan", "plan", "standard", 1500, "EUR"))
        session.commit()
    purchase = settled_purchase(provider, victim, code)
    own_purchase = settled_purchase(provider, tenant, code)
    world = World(app=sweep_app, client=client, provider=provider, idp=idp, tenant=tenant,
                  owner_token=tenants.access_token(client, tenant.member("owner"), tenant.slug),
                  operator=operator, operator_token=tenants.access_token(client, operator), victim=victim,
                  product_code=code, purchase_id=purchase, own_purchase_id=own_purchase,
                  employees=(uuid.uuid4(), uuid.uuid4()),
                  string_key="",
                  people=[*tenant.user_ids, person.user_id, operator.user_id, *victim.user_ids],
                  footprint=Footprint(provider))
    call = Call(world, None, None)
    world.employees = (uuid.UUID(make_employee(world, call)), uuid.UUID(make_employee(world, call)))
    strings = world.api("GET", "/api/v1/translations/strings", status=200)["items"]
    world.string_key = strings[0]["key"]
    yield world
    world.footprint.close()


def settled_purchase(provider: DataProvider, tenant: TenantWithMembers, code: str) -> uuid.UUID:
    """A purchase of ``code`` by the tenant's owner, settled (failed), its charge command
    withdrawn: nothing will handle it while the sweep runs."""
    with provider.management() as session:
        purchase = purchases.request_purchase(
            session, SandboxGateway(provider.settings.database_url, provider.settings.secret_key),
            PurchaseRequest(code, 1500, "EUR", "4000000000000259"), tenant_id=tenant.id,
            buyer_user_id=tenant.member("owner").user_id, idempotency_key="sweep",
            correlation_id=None).purchase_id
        session.execute(text("UPDATE purchases SET status = 'failed' WHERE id = :id"), {"id": purchase})
        session.execute(text("DELETE FROM outbox WHERE payload->>'purchase_id' = :id"), {"id": str(purchase)})
        session.commit()
    return purchase


@pytest.fixture(scope="package")
def browsing(world: World) -> Browsing:
    """A CSRF token from a rendered form, its session, and the owner signed in."""
    first = world.app.test_client()
    token = page_csrf(first)
    cookie = first.get_cookie(world.app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    return Browsing(cookie.value, token, tenants.sign_in(world.client, world.tenant.member("owner"),
                                                         world.tenant.slug))
