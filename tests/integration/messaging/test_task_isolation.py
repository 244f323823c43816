"""Tenant isolation, swept over every task registered on the Celery app.

``TASKS`` classifies every task of ``workers.app`` (Celery's own ``celery.*`` aside); one
missing from it, or an entry no longer registered, fails ``test_every_task_is_classified``
by name, so a new task joins the sweep when it is classified:

- ``Handled``: a ``domain_task`` (workers.base): one envelope in, run through
  ``domain.messaging.handling.handle``. Every one is swept here, generically:

  * *forged tenant*: a delivery recorded for one tenant whose payload names another (A and
    B both ways, trial tenants sharing the trial database; and A with D, a tenant on a
    database of its own) is refused (``PermissionError``, recorded on its outbox row, no
    inbox row) and writes nothing: both tenants' ``holdings`` (every table with a
    ``tenant_id`` in the management database and in the tenant's own, their members' rows,
    their outbox and inbox rows) and the emails recorded for anyone are unchanged;
  * *B's thing in A's delivery*: for each handler whose payload names a thing by id
    (``names``), a delivery rightly addressed to A that names B's (or D's) real thing
    completes without touching its owner; what it does for A is ``then``: ``IGNORED``
    (nothing of A changes but its inbox row) or ``CARRIED`` (a notification: A's own notices
    and emails, written from what the event carries, which names things only to describe them
    and is never looked up by them). A notification whose people are B's is ``IGNORED``: it
    reaches only A's active members, so B's get neither notice nor email; the ones left
    ``CARRIED`` that name a thing address an email (an invitation) or are an account's own
    message (its verification). The trial reminder names no thing: it reaches A's admins.

  Each thing is real and in the state in which its handler would still act on it
  (tests/support/things.py), so a handler that reached it would change its owner.
- ``SweptHere``: a plain task or beat job with a test of its own in this module (``test``),
  whose source names the task it runs (``test_tasks_swept_here_are_swept_here``).
- ``ShownIn``: shown by a test of another module, which calls the task or the domain
  function it runs (``test_tasks_shown_elsewhere_are_shown_there``).
- ``Platform``: works across tenants by design on no tenant's behalf (the message plane's
  bookkeeping, the sending stage, schema migrations), with the reason.

Every delivery runs in a real ``celery worker`` (every queue, started once for the module on
a plane of its own: fresh databases, its own Redis), exactly as the outbox's publisher sends
it: through the task base's redelivery check, the actor guard, ``handling.handle`` with the
worker's own ports, failure recording and publishing. One worker for the module costs a few
seconds once; each delivery then costs a fraction of a second, so nothing is run in-process.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import io
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from celery import Celery
from sqlalchemy import select, text, update

from config.celery import QUEUES
from domain.assets import keys
from domain.assets.storage import Storage, build_storage
from domain.db.provider import MANAGEMENT
from domain.identity.services import PasswordSealer
from domain.messaging import bus
from domain.messaging.contracts import Contract
from domain.messaging.contracts.assets import AssetProcessedV1, ProcessAssetV1
from domain.messaging.contracts.employment import EmployeeDeletedV1, RunImportV1
from domain.messaging.contracts.iam import UserInvitedV1
from domain.messaging.contracts.identity import EmailVerificationRequestedV1, PasswordResetRequestedV1
from domain.messaging.contracts.publications import PublicationPublishedV1, PublishPublicationV1
from domain.messaging.contracts.purchases import (
    ChargePurchaseV1,
    PurchaseCompletedV1,
    PurchaseFailedV1,
    PurchaseRefundedV1,
    RefundPurchaseV1,
)
from domain.messaging.contracts.tenancy import (
    PromoteTenantV1,
    ProvisionTenantV1,
    TenantPromotedV1,
    TenantProvisionedV1,
    TrialEndingV1,
)
from domain.messaging.tables import outbox
from domain.notifications.deliveries import IN_PROGRESS
from domain.tenancy.models import Tenant
from tests.support import deliveries, processes, tenants
from tests.support.deliveries import deliver, holdings, record_delivery
from tests.support.planes import OwnPlane, own_plane, own_redis
from tests.support.services import Services
from tests.support.things import Side, make_dedicated, make_side, people, product, publication, upload
from tests.support.waiting import wait_for


@dataclass(frozen=True)
class World:
    """The module's plane and worker, and three tenants with their things: A and B on the trial
    database, D on a database of its own."""

    plane: OwnPlane
    publisher: Celery
    a: Side
    b: Side
    d: Side

    @property
    def provider(self) -> Any:
        """The plane's data provider."""
        return self.plane.provider

    def side(self, name: str) -> Side:
        """A side by its letter."""
        return {"A": self.a, "B": self.b, "D": self.d}[name]


Builder = Callable[[World, Side, uuid.UUID], Contract]  # the message of a side's thing, for a tenant

IGNORED = "completes; nothing of A changes but its inbox row"
CARRIED = "writes A's own notices and emails from what the event carries (it looks nothing up by id)"


@dataclass(frozen=True)
class Handled:
    """A ``domain_task``: ``message`` is the message of a side's thing; ``names`` the payload
    field naming that thing (None: the message names none); ``then`` what A's delivery naming
    B's thing does for A; ``why`` the handler's own check."""

    message: Builder
    names: str | None
    then: str
    why: str


@dataclass(frozen=True)
class SweptHere:
    """A plain task or beat job tested by ``test`` in this module."""

    test: str
    why: str


@dataclass(frozen=True)
class ShownIn:
    """Shown by ``test`` of ``module``, whose source calls ``calls`` (the task, the domain
    function it runs, or the request that queues it)."""

    module: str
    test: str
    calls: str
    why: str


@dataclass(frozen=True)
class Platform:
    """Works across tenants by design, on no tenant's behalf."""

    why: str


@dataclass(frozen=True)
class Tenantless:
    """A ``domain_task`` whose message belongs to no tenant (its contract has no ``tenant_id``:
    an account's own business): ``message`` is that message for a side's member. Its payload
    cannot name another tenant; recorded for a tenant it is refused, and recorded for none it
    writes nothing of any tenant."""

    message: Callable[[World, Side], Contract]
    why: str


Entry = Handled | SweptHere | ShownIn | Platform | Tenantless


# --- the message of each side's thing ----------------------------------------------------------

def _completed(w: World, s: Side, to: uuid.UUID) -> PurchaseCompletedV1:
    p = s.charged.view
    return PurchaseCompletedV1(purchase_id=p.id, tenant_id=to, buyer_user_id=p.buyer_user_id,
                               product_code=p.product_code, product_name=p.product_name, product_kind="addon",
                               plan=p.plan, amount_minor=p.amount_minor, currency=p.currency,
                               charge_id=s.charged.charge_id)


def _refunded(w: World, s: Side, to: uuid.UUID) -> PurchaseRefundedV1:
    p = s.refunded.view
    return PurchaseRefundedV1(purchase_id=p.id, tenant_id=to, buyer_user_id=p.buyer_user_id,
                              product_code=p.product_code, product_name=p.product_name, product_kind="addon",
                              amount_minor=p.amount_minor, currency=p.currency,
                              refund_id=s.refunded.refund_id)


def _failed(w: World, s: Side, to: uuid.UUID) -> PurchaseFailedV1:
    p = s.pending.view
    return PurchaseFailedV1(purchase_id=p.id, tenant_id=to, buyer_user_id=p.buyer_user_id,
                            product_name=p.product_name, reason="card declined")


def _invited(w: World, s: Side, to: uuid.UUID) -> UserInvitedV1:
    sealed = PasswordSealer(w.plane.settings.secret_key).seal(s.invitation_token)
    return UserInvitedV1(invitation_id=s.invitation.id, tenant_id=to, tenant_name=s.tenant.name,
                         email=s.invitation.email, role="employee", sealed_token=sealed,
                         inviter_name="The Owner", expires_at=s.invitation.expires_at)


def _verification_requested(w: World, s: Side, to: uuid.UUID) -> EmailVerificationRequestedV1:
    sealed = PasswordSealer(w.plane.settings.secret_key).seal(f"verify-{s.tenant.slug}-0123456789abcdef")
    return EmailVerificationRequestedV1(user_id=s.owner.user_id, tenant_id=to, email=s.owner.email,
                                        name="The Owner", sealed_token=sealed,
                                        expires_at=datetime.now(UTC) + timedelta(hours=72))


def _password_reset_requested(w: World, s: Side) -> PasswordResetRequestedV1:
    sealed = PasswordSealer(w.plane.settings.secret_key).seal(f"reset-{s.tenant.slug}-0123456789abcdef")
    return PasswordResetRequestedV1(user_id=s.owner.user_id, email=s.owner.email, name="The Owner",
                                    sealed_token=sealed, expires_at=datetime.now(UTC) + timedelta(hours=1))


def _welcome(w: World, s: Side, to: uuid.UUID) -> TenantProvisionedV1:
    return TenantProvisionedV1(tenant_id=to, tenant_name=s.tenant.name, admin_user_id=s.owner.user_id,
                               admin_name="The Owner", admin_email=s.owner.email)


def _promoted(w: World, s: Side, to: uuid.UUID) -> TenantPromotedV1:
    return TenantPromotedV1(promotion_id=s.promotion, tenant_id=to, tenant_name=s.tenant.name,
                            rows=1, requested_by=s.owner.user_id)


def _processed(w: World, s: Side, to: uuid.UUID) -> AssetProcessedV1:
    return AssetProcessedV1(asset_id=s.asset, tenant_id=to, owner_id=s.owner.user_id, filename="notes.txt",
                            status="ready")


def _published(w: World, s: Side, to: uuid.UUID) -> PublicationPublishedV1:
    return PublicationPublishedV1(publication_id=s.publication, tenant_id=to,
                                  title=f"News of {s.tenant.slug}",
                                  author_name="The Owner", recipient_ids=s.tenant.user_ids)


def _trial_ending(w: World, s: Side, to: uuid.UUID) -> TrialEndingV1:
    ends_at = datetime.now(UTC) + timedelta(days=5)
    return TrialEndingV1(tenant_id=to, tenant_name=s.tenant.name, ends_at=ends_at)


TASKS: dict[str, Entry] = {
    # -- domain_task handlers: swept here, generically ------------------------------------------
    "tasks.tenancy.provision_tenant": Handled(
        lambda w, s, to: ProvisionTenantV1(signup_id=s.signup, tenant_id=to), "signup_id", IGNORED,
        "provisions only a signup of the tenant the message names"),
    "tasks.tenancy.apply_plan": Handled(
        _completed, "purchase_id", IGNORED, "applies only a purchase of the tenant the message names"),
    "tasks.tenancy.revert_plan": Handled(
        _refunded, "purchase_id", IGNORED, "finds the plan change by purchase and tenant"),
    "tasks.purchases.charge_purchase": Handled(
        lambda w, s, to: ChargePurchaseV1(purchase_id=s.pending.view.id, tenant_id=to), "purchase_id",
        IGNORED, "charges only a purchase of the tenant the message names"),
    "tasks.purchases.refund_purchase": Handled(
        lambda w, s, to: RefundPurchaseV1(purchase_id=s.refund_asked.view.id, tenant_id=to, reason="asked"),
        "purchase_id", IGNORED, "refunds only a purchase of the tenant the message names"),
    "tasks.billing.record_charge": Handled(
        _completed, "purchase_id", IGNORED, "books only a purchase of the tenant the message names"),
    "tasks.billing.record_refund": Handled(
        _refunded, "purchase_id", IGNORED, "books only a purchase of the tenant the message names"),
    "tasks.employment.remove_edges": Handled(
        lambda w, s, to: EmployeeDeletedV1(tenant_id=to, employee_id=s.employee), "employee_id", IGNORED,
        "removes the edges of the employee in the tenant's part of the graph only"),
    "tasks.assets.process_asset": Handled(
        lambda w, s, to: ProcessAssetV1(asset_id=s.asset, tenant_id=to, blocked_kinds=[]), "asset_id",
        IGNORED, "reads the asset on the tenant's own session (filter, RLS)"),
    "tasks.publications.publish_publication": Handled(
        lambda w, s, to: PublishPublicationV1(publication_id=s.publication, tenant_id=to), "publication_id",
        IGNORED, "reads the publication on the tenant's own session (filter, RLS)"),
    "tasks.notifications.record_welcome_notice": Handled(
        _welcome, "admin_user_id", IGNORED,
        "reaches only the tenant's active members: the other tenant's people get nothing"),
    "tasks.notifications.send_invitation": Handled(
        _invited, "invitation_id", CARRIED, "an email only, recorded for the message's tenant"),
    "tasks.notifications.send_email_verification": Handled(
        _verification_requested, "user_id", CARRIED,
        "an email only, to the address the message carries, recorded for the message's tenant"),
    "tasks.notifications.send_password_reset": Tenantless(
        _password_reset_requested, "an email only, to the account's own address, for no tenant"),
    "tasks.notifications.record_purchase_receipt": Handled(
        _completed, "purchase_id", IGNORED,
        "reaches only the tenant's active members: the other tenant's people get nothing"),
    "tasks.notifications.record_purchase_failure": Handled(
        _failed, "purchase_id", IGNORED,
        "reaches only the tenant's active members: the other tenant's people get nothing"),
    "tasks.notifications.record_refund_notice": Handled(
        _refunded, "purchase_id", IGNORED,
        "reaches only the tenant's active members: the other tenant's people get nothing"),
    "tasks.notifications.record_promotion_notice": Handled(
        _promoted, "promotion_id", IGNORED,
        "reaches only the tenant's active members: the other tenant's people get nothing"),
    "tasks.notifications.record_asset_notice": Handled(
        _processed, "asset_id", IGNORED,
        "reaches only the tenant's active members: the other tenant's people get nothing"),
    "tasks.notifications.record_trial_notice": Handled(
        _trial_ending, None, CARRIED, "reminds the admins of the tenant the message names"),
    "tasks.notifications.record_publication_notice": Handled(
        _published, "publication_id", IGNORED,
        "reaches only the tenant's active members: the other tenant's people get nothing"),
    # -- plain tasks taking an envelope or an id ------------------------------------------------
    "tasks.tenancy.promote_tenant": SweptHere(
        "test_a_promotion_command_runs_only_its_own_tenants_promotion",
        "runs the promotion its command names, only for the tenant its envelope is for"),
    "tasks.employment.run_import": SweptHere(
        "test_an_import_command_runs_only_its_own_tenants_import",
        "runs the import its command names, on the tenant's own session"),
    "tasks.tenancy.resume_promotion": ShownIn(
        "tests.integration.promotion.test_procedure",
        "test_a_promoted_tenant_lives_only_in_its_own_database_on_the_emptier_server", "promotion.run",
        "an operator's or beat's re-run of a recorded promotion, whose row names its tenant: it copies "
        "that tenant's rows alone and leaves its neighbour's"),
    "tasks.tenancy.export_tenant": ShownIn(
        "tests.integration.tenancy.test_export", "test_a_trial_tenants_export_holds_each_of_its_rows_once",
        "start(plane, seeded)",
        "an operator's export, whose row names its tenant: the archive holds nothing of a neighbour "
        "(and a dedicated tenant's, nothing of the trial database)"),
    "tasks.tenancy.offboard_tenant": ShownIn(
        "tests.integration.tenancy.test_export", "test_offboarding_a_trial_tenant_purges_its_rows_only",
        'start(plane, seeded, "offboard")',
        "an operator's offboarding, whose row names its tenant: the neighbour's rows stay"),
    "tasks.tenancy.migrate_tenant_database": Platform(
        "an operator's schema upgrade of one database, named by its key: no tenant's rows are read"),
    # -- beat jobs ------------------------------------------------------------------------------------
    "tasks.assets.clean_up_assets": SweptHere(
        "test_the_asset_clean_up_removes_each_tenants_own_files_only",
        "checks each tenant's files against that tenant's own database"),
    "tasks.tenancy.remind_trials": SweptHere(
        "test_trial_reminders_tell_each_tenant_of_its_own_trial_only",
        "one reminder per tenant, recorded and delivered for that tenant"),
    "tasks.publications.publish_due": SweptHere(
        "test_scheduled_publishing_sends_each_due_publication_in_its_own_tenant",
        "claims each tenant's due publications on that tenant's own session"),
    "tasks.employment.report_dangling_edges": SweptHere(
        "test_the_dangling_edge_report_checks_each_tenant_against_its_own_employees",
        "reads each tenant's edges against that tenant's own employees"),
    "tasks.tenancy.resume_promotions": ShownIn(
        "tests.integration.promotion.test_procedure",
        "test_a_promoted_tenant_lives_only_in_its_own_database_on_the_emptier_server", "promotion.run",
        "sends resume_promotion for each unfinished promotion by id: its isolation is that run's"),
    "tasks.tenancy.resume_exports": ShownIn(
        "tests.integration.tenancy.test_export", "test_an_export_killed_midway_is_finished_after_a_restart",
        "tasks.tenancy.resume_exports", "sends export_tenant or offboard_tenant again by the job's id"),
    "tasks.notifications.send_digests": ShownIn(
        "tests.integration.notifications.test_digest",
        "test_a_burst_is_throttled_and_the_digest_goes_once_per_person_and_day", "digest.send_digests",
        "a person's digest: their unread notices of each tenant they belong to, each read on that "
        "tenant's own session (domain.notifications.digest._sections)"),
    "tasks.relay.sweep_outboxes": Platform(
        "the message plane: re-sends every database's overdue outbox rows as recorded, tenant and all"),
    "tasks.relay.prune_messages": Platform(
        "the message plane: deletes delivered messages past retention (and used or expired email "
        "verification and password reset links, which belong to accounts, not tenants)"),
    "tasks.notifications.send_emails": Platform(
        "the sending stage: sends emails already rendered and addressed by their tenant's handler"),
    "tasks.notifications.sweep_emails": Platform("the sending stage: settles attempts that died mid-send"),
    "tasks.tenancy.check_migration_drift": Platform("reports tenant databases not at head; reads no rows"),
}


# --- the plane, the worker and the world -----------------------------------------------------------

@pytest.fixture(scope="module")
def registered() -> dict[str, Any]:
    """The worker's Celery app's tasks (every task module imported, as a worker does at start)."""
    # Importing workers.app builds settings from the environment: inert ones, no server reached.
    inert = {"SECRET_KEY": "task-sweep-check", "DATABASE_URL": "postgresql://sweep@127.0.0.1:1/none",
             "BROKER_URL": "redis://127.0.0.1:1/0"}
    with mock.patch.dict(os.environ, inert):
        app: Celery = importlib.import_module("workers.app").app
    app.loader.import_default_modules()
    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


@pytest.fixture(scope="module")
def plane(services: Services, tmp_path_factory: pytest.TempPathFactory, log_dir: Path) -> Iterator[OwnPlane]:
    """Fresh databases, a Redis of the module's own and a worker consuming every queue."""
    with own_redis(tmp_path_factory.mktemp("task-sweep-redis")) as redis, \
            own_plane(services, redis, tmp_path_factory.mktemp("task-sweep-var"),
                      ASSET_UNCONFIRMED_SECONDS="0.01") as own:
        worker = processes.celery_worker("task-sweep", ",".join(QUEUES), own.env, log_dir, concurrency=2)
        try:
            yield own
        finally:
            worker.stop()


@pytest.fixture(scope="module")
def world(plane: OwnPlane, services: Services) -> World:
    """A and B (trial), D (its own database), each with every thing of the sweep."""
    provider, settings = plane.provider, plane.settings
    code = product(provider)
    made = {name: tenants.create_tenant(provider, ("owner", "admin", "employee"), prefix=f"iso{name.lower()}")
            for name in "ABD"}
    promoted = {"D": make_dedicated(provider, settings, services.server_url, made["D"].id)}
    sides = {name: make_side(provider, settings, code, tenant, promoted=promoted.get(name))
             for name, tenant in made.items()}
    return World(plane, plane.app.extensions["allotment.celery"], sides["A"], sides["B"], sides["D"])


def settle(w: World) -> None:
    """Wait until no email is still being sent (the sender updates its row as it goes)."""
    def idle() -> bool:
        with w.provider.unscoped(MANAGEMENT) as session:
            return not session.scalar(text("SELECT count(*) FROM email_deliveries WHERE state = ANY(:s)"),
                                      {"s": list(IN_PROGRESS)})
    wait_for(idle, timeout=60, message="the emails to be sent")


# --- the classification ----------------------------------------------------------------------------

def is_domain_task(task: Any) -> bool:
    """True for a task made by ``workers.base.domain_task``."""
    return type(task).__module__ == "workers.base"


def test_every_task_is_classified(registered: dict[str, Any]) -> None:
    missing = sorted(set(registered) - set(TASKS))
    assert not missing, f"tasks missing from TASKS (classify them): {missing}"
    stale = sorted(set(TASKS) - set(registered))
    assert not stale, f"TASKS entries that are no registered task: {stale}"


def test_domain_tasks_and_only_they_are_swept_as_handlers(registered: dict[str, Any], world: World) -> None:
    handled = {name: entry for name, entry in TASKS.items() if isinstance(entry, Handled)}
    tenantless = {name: entry for name, entry in TASKS.items() if isinstance(entry, Tenantless)}
    domain_tasks = {name for name, task in registered.items() if is_domain_task(task)}
    assert set(handled) | set(tenantless) == domain_tasks
    for name, tenantless_entry in tenantless.items():
        message = tenantless_entry.message(world, world.b)
        assert message.tenantless(), name
        assert name.removeprefix("tasks.") in bus.handlers_for(message), name
    for name, entry in handled.items():  # each builds a message its handler takes
        message = entry.message(world, world.b, world.a.id)
        assert name.removeprefix("tasks.") in bus.handlers_for(message), name
        assert entry.names is None or entry.names in type(message).model_fields, name


def _source(module: str, function: str) -> str:
    found = getattr(importlib.import_module(module), function, None)
    assert callable(found) and function.startswith("test_"), f"{module} has no test {function}"
    return inspect.getsource(found)


def test_tasks_swept_here_are_swept_here() -> None:
    for name, entry in TASKS.items():
        if isinstance(entry, SweptHere):
            assert name in _source(__name__, entry.test), f"{entry.test} does not run {name}"


def test_tasks_shown_elsewhere_are_shown_there() -> None:
    for name, entry in TASKS.items():
        if isinstance(entry, ShownIn):
            assert entry.calls in _source(entry.module, entry.test), (
                f"{entry.module}.{entry.test} never calls {entry.calls} ({name})")


# --- domain_task handlers --------------------------------------------------------------------------

def _handled(names_a_thing: bool = False) -> list[str]:
    return [name for name, entry in TASKS.items()
            if isinstance(entry, Handled) and (entry.names is not None or not names_a_thing)]


def _writes_the_tenant_database(task: str) -> bool:
    return bus.target_of(task.removeprefix("tasks.")) == "tenant"


def _forgeries() -> list[Any]:
    """(task, the tenant a delivery is recorded for, the tenant its payload names): A and B both
    ways; A and D both ways too where the handler writes the tenant's own database."""
    found = []
    for task in _handled():
        pairs = [("A", "B"), ("B", "A")]
        if _writes_the_tenant_database(task):
            pairs += [("A", "D"), ("D", "A")]
        label = task.removeprefix("tasks.")
        found += [pytest.param(task, sender, named, id=f"{label}: {sender} names {named}")
                  for sender, named in pairs]
    return found


def _state(w: World, *sides: Side) -> list[dict[str, str]]:
    """What the sides hold, and the emails recorded for anyone."""
    return [*(holdings(w.provider, s.tenant) for s in sides), deliveries.emails(w.provider)]


def _changes(before: list[dict[str, str]], after: list[dict[str, str]]) -> list[list[str]]:
    """What changed in each part of a ``_state``."""
    return [tenants.changed(b, a) for b, a in zip(before, after, strict=True)]


@pytest.mark.parametrize(("task", "sender", "named"), _forgeries())
def test_a_delivery_whose_payload_names_another_tenant_is_refused_and_writes_nothing(
        world: World, task: str, sender: str, named: str) -> None:
    entry = TASKS[task]
    assert isinstance(entry, Handled)
    recorded_for, other = world.side(sender), world.side(named)
    # A row of the sender's own message, its payload made to name the other tenant and its thing
    # (as a bug or a tampered row would).
    forged = entry.message(world, other, other.id).model_dump(mode="json")
    envelope = record_delivery(world.provider, entry.message(world, recorded_for, recorded_for.id),
                               task.removeprefix("tasks."), tenant_id=recorded_for.id, payload=forged)
    before = _state(world, recorded_for, other)
    row = deliver(world.publisher, world.provider, envelope)
    assert row["completed_at"] is None, "a forged delivery was run"
    assert "PermissionError" in row["last_error"] and f"names tenant {other.id}" in row["last_error"]
    assert _changes(before, _state(world, recorded_for, other)) == [[], [], []]


def _tenantless() -> list[str]:
    return [name for name, entry in TASKS.items() if isinstance(entry, Tenantless)]


@pytest.mark.parametrize("task", _tenantless())
@pytest.mark.parametrize("recorded_for", ["A", "D"])
def test_a_message_of_no_tenant_recorded_for_a_tenant_is_refused_and_writes_nothing(
        world: World, task: str, recorded_for: str) -> None:
    entry = TASKS[task]
    assert isinstance(entry, Tenantless)
    side = world.side(recorded_for)
    envelope = record_delivery(world.provider, entry.message(world, side), task.removeprefix("tasks."),
                               tenant_id=side.id)
    before = _state(world, side, world.b)
    row = deliver(world.publisher, world.provider, envelope)
    assert row["completed_at"] is None, "a delivery of no tenant's message, recorded for a tenant, was run"
    assert "PermissionError" in row["last_error"] and "is no tenant's message" in row["last_error"]
    assert _changes(before, _state(world, side, world.b)) == [[], [], []]


@pytest.mark.parametrize("task", _tenantless())
def test_a_message_of_no_tenant_writes_nothing_of_any_tenant(world: World, task: str) -> None:
    entry = TASKS[task]
    assert isinstance(entry, Tenantless)
    message = entry.message(world, world.b)  # for B's owner, as an account
    envelope = record_delivery(world.provider, message, task.removeprefix("tasks."), tenant_id=None)
    before = [holdings(world.provider, side.tenant) for side in (world.a, world.b, world.d)]
    row = deliver(world.publisher, world.provider, envelope)
    assert row["completed_at"] is not None, row["last_error"]
    after = [holdings(world.provider, side.tenant) for side in (world.a, world.b, world.d)]
    assert [tenants.changed(b, a) for b, a in zip(before, after, strict=True)] == [[], [], []]
    with world.provider.unscoped(MANAGEMENT) as session:
        recorded = session.execute(text("SELECT recipient, tenant_id FROM email_deliveries "
                                        "WHERE event_id = :e"), {"e": uuid.UUID(envelope.event_id)}).all()
    assert [tuple(r) for r in recorded] == [(world.b.owner.email, None)]
    settle(world)


def _borrowings() -> list[Any]:
    """(task, whose thing A's delivery names): B's, and D's (on a database of its own)."""
    return [pytest.param(task, owner, id=f"{task.removeprefix('tasks.')}: {owner}'s thing")
            for task in _handled(names_a_thing=True) for owner in "BD"]


# What a CARRIED delivery may write of A's: its notices, its emails, its inbox row.
CARRIED_TABLES = (".notices", "management.email_deliveries", ".inbox")


@pytest.mark.parametrize(("task", "owner"), _borrowings())
def test_a_delivery_for_a_naming_another_tenants_thing_leaves_it_alone(world: World, task: str,
                                                                      owner: str) -> None:
    entry = TASKS[task]
    assert isinstance(entry, Handled) and entry.names is not None
    a, other = world.a, world.side(owner)
    message = entry.message(world, other, a.id)
    assert getattr(message, entry.names) == getattr(entry.message(world, other, other.id), entry.names)
    envelope = record_delivery(world.provider, message, task.removeprefix("tasks."), tenant_id=a.id)
    before_a, before_other = holdings(world.provider, a.tenant), holdings(world.provider, other.tenant)
    row = deliver(world.publisher, world.provider, envelope)
    assert row["last_error"] is None and row["completed_at"] is not None
    settle(world)
    assert tenants.changed(before_other, holdings(world.provider, other.tenant)) == []
    of_a = tenants.changed(before_a, holdings(world.provider, a.tenant))
    assert any(name.endswith(".inbox") for name in of_a)  # the delivery was handled, in A
    if entry.then == IGNORED:
        assert [name for name in of_a if not name.endswith(".inbox")] == []
    else:
        assert [name for name in of_a if not name.endswith(CARRIED_TABLES)] == []
        assert [name for name in of_a if not name.endswith(".inbox")], "nothing was written for A"


# --- plain tasks taking an envelope ------------------------------------------------------------------

def _task_failure(w: World, task_id: str) -> str:
    """The exception a task ended with (its result in the result backend)."""
    result = w.publisher.AsyncResult(task_id)
    wait_for(lambda: result.state in ("SUCCESS", "FAILURE"), timeout=30, message=f"the result of {task_id}")
    assert result.state == "FAILURE", result.result
    return repr(result.result)


def _forged_command_is_refused(world: World, task: str, own: Contract, naming: Contract, other: Side) -> None:
    """A command recorded for A whose payload names ``other`` and its thing (``naming``
    instead of A's ``own``) is refused, the refusal kept on its row like a handler's, and
    writes nothing of either."""
    forged = record_delivery(world.provider, own, task.removeprefix("tasks."), tenant_id=world.a.id,
                             payload=naming.model_dump(mode="json"))
    assert bus.task_name(forged.handler) == task
    before = _state(world, world.a, other)
    row = deliver(world.publisher, world.provider, forged)
    assert row["completed_at"] is None and "PermissionError" in row["last_error"]
    assert _changes(before, _state(world, world.a, other)) == [[], [], []]


def test_a_promotion_command_runs_only_its_own_tenants_promotion(world: World) -> None:
    a, b = world.a, world.b
    _forged_command_is_refused(world, "tasks.tenancy.promote_tenant",
                               PromoteTenantV1(promotion_id=a.promotion, tenant_id=a.id),
                               PromoteTenantV1(promotion_id=b.promotion, tenant_id=b.id), b)
    # For A, naming B's promotion: not found for A (its delivery confirmed: nothing to retry).
    borrowed = record_delivery(world.provider, PromoteTenantV1(promotion_id=b.promotion, tenant_id=a.id),
                               "tenancy.promote_tenant", tenant_id=a.id)
    before = _state(world, a, b)
    deliver(world.publisher, world.provider, borrowed)
    assert "NotFound" in _task_failure(world, borrowed.id)
    assert _changes(before, _state(world, a, b)) == [[], [], []]


@pytest.mark.parametrize("owner", "BD")
def test_an_import_command_runs_only_its_own_tenants_import(world: World, owner: str) -> None:
    a, other = world.a, world.side(owner)
    _forged_command_is_refused(world, "tasks.employment.run_import",
                               RunImportV1(import_id=a.import_id, tenant_id=a.id),
                               RunImportV1(import_id=other.import_id, tenant_id=other.id), other)
    # For A, naming the other's import: not found in A, the failure kept on the row.
    borrowed = record_delivery(world.provider, RunImportV1(import_id=other.import_id, tenant_id=a.id),
                               "employment.run_import", tenant_id=a.id)
    before = _state(world, a, other)
    row = deliver(world.publisher, world.provider, borrowed)
    assert row["completed_at"] is None and "NotFound" in row["last_error"]
    assert _changes(before, _state(world, a, other)) == [[], [], []]


# --- beat jobs -----------------------------------------------------------------------------------------

def run_beat_job(w: World, task: str) -> Any:
    """Run a beat job in the worker as beat sends it; its result."""
    return w.publisher.send_task(task, queue=task.split(".")[1]).get(timeout=120)


def _files(storage: Storage, tenant_id: uuid.UUID) -> dict[str, str]:
    """The tenant's stored asset files by content."""
    found = {}
    for stored in storage.listing(f"tenants/{tenant_id}/assets/"):
        body = storage.get(stored.key)
        try:
            found[stored.key] = hashlib.sha256(body.read()).hexdigest()
        finally:
            body.close()
    return found


def test_the_asset_clean_up_removes_each_tenants_own_files_only(world: World) -> None:
    task = "tasks.assets.clean_up_assets"
    a, others = world.a, (world.b, world.d)
    storage = build_storage(world.plane.settings)
    doomed = upload(world.provider, world.plane.settings, a.tenant)  # deleted by A: its files go
    with world.provider.tenant(a.id) as db:
        db.execute(text("UPDATE assets SET status = 'deleted', deleted_at = now() WHERE id = :id"),
                   {"id": doomed})
        db.commit()
    orphan = keys.original(a.id, uuid.uuid4())  # a file of A's whose asset has no row
    storage.put(orphan, io.BytesIO(b"orphan"))
    kept = {s.id: _files(storage, s.id) for s in others}
    assert all(kept.values())
    before = [holdings(world.provider, s.tenant) for s in others]
    report = run_beat_job(world, task)
    assert report["failed"] == [] and not report["skipped"]
    assert [key for key in _files(storage, a.id) if f"/{doomed}/" in key or key == orphan] == []
    assert {s.id: _files(storage, s.id) for s in others} == kept
    assert _changes(before, [holdings(world.provider, s.tenant) for s in others]) == [[], []]


def test_trial_reminders_tell_each_tenant_of_its_own_trial_only(world: World) -> None:
    task = "tasks.tenancy.remind_trials"
    settings = world.plane.settings
    trials = (world.a, world.b)
    with world.provider.management() as session:  # both ending within the reminder's days
        session.execute(update(Tenant).where(Tenant.id.in_([s.id for s in trials])).values(
            created_at=datetime.now(UTC) - timedelta(days=settings.trial_days - 1)))
        session.commit()
    before_d = holdings(world.provider, world.d.tenant)
    assert run_beat_job(world, task) == 2
    with world.provider.unscoped(MANAGEMENT) as session:
        recorded = session.execute(select(outbox.c.event_id, outbox.c.tenant_id, outbox.c.payload).where(
            outbox.c.type == TrialEndingV1.message_type, outbox.c.correlation_id.is_(None))).all()
    assert sorted(str(r.tenant_id) for r in recorded) == sorted(str(s.id) for s in trials)
    assert all(r.payload["tenant_id"] == str(r.tenant_id) for r in recorded)
    by_tenant = {r.tenant_id: r for r in recorded}
    for side in trials:
        admins = {side.tenant.member(role).user_id for role in ("owner", "admin")}
        event = by_tenant[side.id].event_id
        assert by_tenant[side.id].payload["tenant_name"] == side.tenant.name
        wait_for(lambda: _notices_of(world, event) == {side.id: admins},  # noqa: B023 - called now
                 timeout=60, message=f"the reminder of {side.tenant.slug}")
    settle(world)
    assert tenants.changed(before_d, holdings(world.provider, world.d.tenant)) == []


def _notices_of(w: World, event_id: uuid.UUID) -> dict[uuid.UUID, set[uuid.UUID]]:
    """Who got a notice of the event, by tenant, in any tenant database."""
    found: dict[uuid.UUID, set[uuid.UUID]] = {}
    for db_key in w.provider.tenant_databases():
        with w.provider.unscoped(db_key) as session:
            for tenant_id, user_id in session.execute(
                    text("SELECT tenant_id, user_id FROM notices WHERE event_id = :e"), {"e": event_id}):
                found.setdefault(tenant_id, set()).add(user_id)
    return found


def _publication_status(w: World, side: Side, publication_id: uuid.UUID) -> str:
    with w.provider.tenant(side.id) as db:
        return str(db.scalar(text("SELECT status FROM publications WHERE id = :id"), {"id": publication_id}))


def test_scheduled_publishing_sends_each_due_publication_in_its_own_tenant(world: World) -> None:
    task = "tasks.publications.publish_due"
    later = datetime.now(UTC) + timedelta(hours=1)
    sides = (world.a, world.b, world.d)
    due = {side.id: publication(world.provider, side.tenant, publish_at=later) for side in sides}
    for side in sides:  # now due (each in its tenant's database: A and B share the trial one)
        with world.provider.tenant(side.id) as db:
            db.execute(text("UPDATE publications SET publish_at = now() - interval '1 minute' "
                            "WHERE id = :id"), {"id": due[side.id]})
            db.commit()
    not_yet = publication(world.provider, world.b.tenant, publish_at=later)
    assert run_beat_job(world, task) == 3
    for side in sides:
        wait_for(lambda: _publication_status(world, side, due[side.id]) == "published",  # noqa: B023
                 timeout=60, message=f"the publication of {side.tenant.slug} to be published")
        with world.provider.unscoped(world.provider.route(side.id).db_key) as session:
            commands = session.execute(select(outbox.c.tenant_id, outbox.c.payload).where(
                outbox.c.type == PublishPublicationV1.message_type,
                outbox.c.payload["publication_id"].astext == str(due[side.id]))).all()
        assert [(r.tenant_id, r.payload["tenant_id"]) for r in commands] == [(side.id, str(side.id))]
    assert _publication_status(world, world.b, not_yet) == "scheduled"
    settle(world)


def test_the_dangling_edge_report_checks_each_tenant_against_its_own_employees(world: World) -> None:
    task = "tasks.employment.report_dangling_edges"
    gone, _ = people(world.provider, world.a.id)  # A's manager row vanishes; its edge stays
    with world.provider.tenant(world.a.id) as db:
        db.execute(text("DELETE FROM employees WHERE id = :id"), {"id": gone})
        db.commit()
    report = run_beat_job(world, task)
    assert report["dangling"][str(world.a.id)]["sample"] == [str(gone)]
    # B's (trial) and D's (its own database) edges are each checked against their own employees.
    assert not {str(world.b.id), str(world.d.id)} & set(report["dangling"])
