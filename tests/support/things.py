"""A tenant with one real thing of each kind a message handler acts on, for the task sweep
(tests/integration/messaging/test_task_isolation.py).

Each thing is made by its context's own services and left in the state in which its handler
would still act on it (a signup to provision, a purchase to charge, one charged and not yet
booked or applied, a refund to make and one to book and revert, an employee with a reporting
line, an upload to process, a publication to send, an import to run, a promotion to run).
Their commands stay in the outboxes, never sent: only what a test delivers reaches a worker.
"""
from __future__ import annotations

import io
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text, update

from config.settings import Settings, database_name, database_on
from domain.assets import policies
from domain.assets import services as assets
from domain.assets.storage import build_storage
from domain.db import migrate
from domain.db.provider import DataProvider, server_label
from domain.employment import imports
from domain.employment import services as employment
from domain.iam import services as iam
from domain.identity.services import PasswordSealer
from domain.publications import services as publications
from domain.purchases import catalogue
from domain.purchases import queries as purchase_queries
from domain.purchases import services as purchases
from domain.purchases.catalogue import ProductSpec
from domain.purchases.queries import PurchaseView
from domain.purchases.sandbox import SandboxGateway
from domain.tenancy import promotion
from domain.tenancy.models import PlanChange, Promotion, Signup, Tenant
from tests.support import refs, tenants
from tests.support.tenants import TenantWithMembers

APPROVED_CARD = "4242 4242 4242 4242"  # the sandbox charges it
IMPORT_FILE = b"name,work_email\nImported Person,imported@example.com\n"


@dataclass(frozen=True)
class Purchased:
    """A purchase of the tenant as it stands, with the gateway's references it was given."""

    view: PurchaseView
    charge_id: str
    refund_id: str


@dataclass(frozen=True)
class Side:
    """A tenant of the sweep and its things."""

    tenant: TenantWithMembers
    dedicated: bool
    signup: uuid.UUID               # pending: provisioning would create its admin
    invitation: iam.InvitationView  # pending
    invitation_token: str
    pending: Purchased              # to charge
    charged: Purchased              # completed; neither booked nor applied yet
    refund_asked: Purchased         # refund requested: to refund
    refunded: Purchased             # refunded; its plan change not reverted, its refund not booked
    manager: uuid.UUID
    employee: uuid.UUID             # reports to ``manager``: an edge of the relation graph
    asset: uuid.UUID                # uploaded, waiting to be processed
    publication: uuid.UUID          # publishing, waiting to be sent
    import_id: uuid.UUID            # pending, waiting to run
    promotion: uuid.UUID            # a trial tenant's pending, waiting to run; a dedicated one's, done

    @property
    def id(self) -> uuid.UUID:
        """The tenant's id."""
        return self.tenant.id

    @property
    def owner(self) -> tenants.Account:
        """The tenant's owner (the buyer, author and uploader of its things)."""
        return self.tenant.member("owner")


def product(provider: DataProvider, plan: str | None = None) -> str:
    """A new product of the catalogue at 15.00 EUR, an add-on (applying it never promotes
    anybody) unless it gives ``plan``; its code."""
    code = f"iso-{plan or 'addon'}-{secrets.token_hex(3)}"
    with provider.management() as session:
        catalogue.create_product(session, ProductSpec(code, f"Isolation {plan or 'add-on'}",
                                                      "plan" if plan else "addon", plan, 1500, "EUR"))
        session.commit()
    return code


def make_dedicated(provider: DataProvider, settings: Settings, server_url: str,
                   tenant_id: uuid.UUID) -> uuid.UUID:
    """Give a trial tenant a database of its own on the first placement server, at the schema's
    head, as a finished promotion leaves it (``planes.drop_dedicated`` drops it): that
    promotion's id."""
    url = database_on(server_url, f"allot_iso_{secrets.token_hex(5)}")
    migrate.ensure_database(url)
    migrate.upgrade("tenant", url, settings.tenant_db_role)
    with provider.management() as session:
        promotion_id = promotion.request_promotion(session, tenant_id, reason="operator")
        session.execute(update(Promotion).where(Promotion.id == promotion_id).values(
            status="completed", step="completed", percent=100))
        session.execute(update(Tenant).where(Tenant.id == tenant_id).values(
            status="dedicated", placement_server=server_label(settings.placement_servers[0]),
            database_name=database_name(url)))
        session.commit()
    provider.invalidate(tenant_id)
    return promotion_id


def purchase(provider: DataProvider, side: TenantWithMembers, code: str, status: str) -> Purchased:
    """A purchase of the product ``code`` by the tenant's owner, recorded as the shop records it
    and then left ``status`` (pending, completed, refund_requested or refunded)."""
    settings = provider.settings
    gateway = SandboxGateway(settings.database_url, settings.secret_key)
    charge_id, refund_id = f"ch_iso_{secrets.token_hex(6)}", f"re_iso_{secrets.token_hex(6)}"
    with provider.management() as session:
        purchase_id = purchases.request_purchase(
            session, gateway, purchases.PurchaseRequest(code, 1500, "EUR", APPROVED_CARD), tenant_id=side.id,
            buyer_user_id=side.member("owner").user_id, idempotency_key=refs.slug("iso"),
            correlation_id=None).purchase_id
        if status != "pending":  # as the charge (and an operator's refund) would leave it
            session.execute(text("UPDATE purchases SET status = :status, charge_id = :charge, "
                                 "completed_at = now(), refund_id = :refund WHERE id = :id"),
                            {"status": status, "charge": charge_id, "id": purchase_id,
                             "refund": refund_id if status == "refunded" else None})
        session.commit()
        view = purchase_queries.purchase(session, purchase_id)
    return Purchased(view, charge_id, refund_id)


def people(provider: DataProvider, tenant_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    """Two new employees of the tenant, the second reporting to the first (an edge): their ids."""
    manager_email, employee_email = refs.email("manager"), refs.email("reporting")
    with provider.tenant(tenant_id) as db, provider.management() as graph_db:
        manager = employment.create_employee(db, graph_db, tenant_id,
                                             employment.EmployeeFields("A Manager", manager_email))
        employee = employment.create_employee(db, graph_db, tenant_id, employment.EmployeeFields(
            "A Report", employee_email, manager_email=manager_email))
        db.commit()
        graph_db.commit()
    return manager.id, employee.id


def upload(provider: DataProvider, settings: Settings, tenant: TenantWithMembers) -> uuid.UUID:
    """A file the tenant's owner uploaded, waiting to be processed: its asset id."""
    data = b"A file to process.\n"
    with provider.management() as session:
        policy = policies.policy_of(session, tenant.id, settings.asset_quota_bytes)
    uploader = assets.Uploader(tenant.id, tenant.member("owner").user_id, policy,
                               settings.asset_max_upload_bytes)
    with provider.tenant(tenant.id) as db:
        asset = assets.receive_upload(db, build_storage(settings), io.BytesIO(data),
                                      assets.Upload("notes.txt", "text/plain", len(data)), uploader)
        db.commit()
    return asset.id


def publication(provider: DataProvider, tenant: TenantWithMembers,
                publish_at: datetime | None = None) -> uuid.UUID:
    """A publication of the tenant's owner for everyone, sent to be published (its command
    recorded), or scheduled for ``publish_at``: its id."""
    author = publications.Author(tenant.member("owner").user_id, admin=True)
    with provider.tenant(tenant.id) as db, provider.management() as management:
        made = publications.create_publication(db, management, tenant.id, author,
                                               publications.Draft(f"News of {tenant.slug}", "News."))
        publications.request_publishing(db, tenant.id, made.id, publish_at=publish_at, correlation_id=None)
        db.commit()
    return made.id


def make_side(provider: DataProvider, settings: Settings, code: str, tenant: TenantWithMembers, *,
              promoted: uuid.UUID | None = None) -> Side:
    """Every thing of the sweep for ``tenant``: a trial tenant, or one on its own database since
    the promotion ``promoted``."""
    owner = tenant.member("owner").user_id
    sealer = PasswordSealer(settings.secret_key)
    with provider.management() as session:
        signup = Signup(id=uuid.uuid4(), tenant_id=tenant.id, admin_name="Signed Up", status="pending",
                        admin_email=refs.email("signup"),
                        sealed_password=sealer.seal("a signup password 0123"))
        session.add(signup)
        invitation, token = iam.invite(session, tenant.id, email=refs.email("invitee"), role_name="employee",
                                       invited_by=owner, lifetime=timedelta(days=7))
        session.commit()
    refunded = purchase(provider, tenant, code, "refunded")
    with provider.management() as session:  # what apply_plan and the ledger left for it
        session.add(PlanChange(tenant_id=tenant.id, purchase_id=refunded.view.id, kind="addon",
                               product_code=code))
        session.commit()
    manager, employee = people(provider, tenant.id)
    with provider.tenant(tenant.id) as db:
        pending_import = imports.record_import(db, tenant.id, "people.csv", IMPORT_FILE, created_by=owner,
                                               correlation_id=None)
        db.commit()
    promotion_id = promoted
    if promotion_id is None:
        with provider.management() as session:
            promotion_id = promotion.request_promotion(session, tenant.id, reason="operator",
                                                       requested_by=owner)
            session.commit()
    return Side(tenant, promoted is not None, signup.id, invitation, token,
                pending=purchase(provider, tenant, code, "pending"),
                charged=purchase(provider, tenant, code, "completed"),
                refund_asked=purchase(provider, tenant, code, "refund_requested"), refunded=refunded,
                manager=manager, employee=employee, asset=upload(provider, settings, tenant),
                publication=publication(provider, tenant), import_id=pending_import.id,
                promotion=promotion_id)
