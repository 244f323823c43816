"""The welcome's path to its recipient, counted on the wire: every event of the notifications
context takes it, so its round trips are a budget. The recipient's account, language,
choices and standing in the tenant are read in one round trip, the email recorded in one,
and the notice written in the handler's transaction (BEGIN, the RLS settings, the write
gate with the inbox claim, the notices, COMMIT).

Each count follows a welcome to the same person, as in a running worker: the tenant's
route, branding and texts are then in the process's caches (the route read just before, the
texts kept for an hour).

A notice names its tenant in a statement the tenant filter does not see, so the pipeline
checks it: an event naming another tenant than the delivery's writes nothing."""
from __future__ import annotations

import uuid
from typing import Any

import pytest

from domain.bootstrap import build_ports
from domain.db.provider import MANAGEMENT, TRIAL
from domain.messaging import handling, outbox
from domain.messaging.contracts.tenancy import TenantProvisionedV1, TenantProvisionedV2
from domain.messaging.outbox import Envelope
from domain.notifications import handlers, preferences
from domain.notifications.models import Notice
from domain.notifications.pipeline import TenantTexts
from domain.translations import services as translations
from tests.integration.notifications.conftest import Plane
from tests.support import roundtrips
from tests.support.tenants import TenantWithMembers
from tests.support.waiting import wait_for
from workers.mail_rendering import JinjaEmailRenderer


@pytest.fixture(scope="module")
def org(plane: Plane) -> TenantWithMembers:
    return plane.tenant(("owner", "admin", "employee"))


def welcome(plane: Plane, org: TenantWithMembers, role: str) -> Envelope:
    """A welcome to ``org``'s member of ``role``, recorded in the outbox (not published)."""
    member = org.member(role)
    event = TenantProvisionedV1(tenant_id=org.id, tenant_name=org.name, admin_user_id=member.user_id,
                                admin_name=f"Ada {role}", admin_email=member.email)
    with plane.provider.management() as session:
        (envelope,) = outbox.record(session, event, tenant_id=org.id, correlation_id="round-trips")
        outbox.discard_pending(session)
        session.commit()
    return envelope


@pytest.fixture(scope="module")
def ports(plane: Plane) -> dict[str, Any]:
    """The worker's ports, kept for the module, with a cache of tenant texts that does not expire."""
    return {**build_ports(plane.settings), "renderer": JinjaEmailRenderer(),
            "tenant_texts": TenantTexts(seconds=3600)}


def handle(plane: Plane, ports: dict[str, Any], envelope: Envelope) -> None:
    """Handle ``envelope`` in this process, as the notifications worker does (which caches
    routes once it hears routing changes)."""
    wait_for(plane.provider.hears_routing_changes, timeout=30, message="the routing listener to subscribe")
    # The worker's contract reads a version 1 welcome too (with no verification link).
    outcome = handling.handle(plane.provider, envelope, TenantProvisionedV2, "tenant",
                              handlers.record_welcome_notice, ports=ports)
    assert not outcome.duplicate and outcome.refused is None


def notice_of(plane: Plane, org: TenantWithMembers, user_id: uuid.UUID, envelope: Envelope) -> Notice:
    """The user's one notice of ``envelope``'s event."""
    (notice,) = [n for n in plane.notices(org.id, user_id) if n.event_id == uuid.UUID(envelope.event_id)]
    return notice


def counted_welcome(plane: Plane, ports: dict[str, Any], org: TenantWithMembers,
                    role: str) -> tuple[Envelope, dict[str, int]]:
    """Welcome ``org``'s member of ``role`` twice; the second welcome and its round trips per database."""
    handle(plane, ports, welcome(plane, org, role))  # the caches are warm after this one, as in a worker
    envelope = welcome(plane, org, role)
    plane.provider.invalidate(org.id)  # the route read afresh now: it will not expire while counted
    plane.provider.route(org.id)
    engines = {db: plane.provider.engine(plane.provider.url_of(db)) for db in (MANAGEMENT, TRIAL)}
    with roundtrips.counting(engines) as trips:
        handle(plane, ports, envelope)
    return envelope, trips.count()


def test_a_welcome_costs_two_round_trips_on_management_and_five_in_its_transaction(
        plane: Plane, ports: dict[str, Any], org: TenantWithMembers) -> None:
    owner = org.member("owner")
    with plane.provider.management() as session:
        translations.set_user_locale(session, plane.catalogues(), owner.user_id, "de")
        session.commit()
    envelope, round_trips = counted_welcome(plane, ports, org, "owner")
    assert round_trips == {MANAGEMENT: 2, TRIAL: 5}

    # What the reads said was used: the owner reads German; the email is recorded, the notice written.
    (delivery,) = plane.deliveries(envelope.event_id)
    assert delivery.subject == "Willkommen bei Allotment, Ada owner"
    notice = notice_of(plane, org, owner.user_id, envelope)
    assert (notice.title, notice.email_status) == ("Willkommen bei Allotment, Ada owner", "queued")


def test_the_recipients_choices_come_with_the_same_read(
        plane: Plane, ports: dict[str, Any], org: TenantWithMembers) -> None:
    admin = org.member("admin")
    with plane.provider.management() as session:
        preferences.set_preferences(session, admin.user_id, {"welcome": {"email": False, "in_app": True}})
        session.commit()
    envelope, round_trips = counted_welcome(plane, ports, org, "admin")
    assert round_trips == {MANAGEMENT: 1, TRIAL: 5}  # no email to record
    assert plane.deliveries(envelope.event_id) == []
    notice = notice_of(plane, org, admin.user_id, envelope)
    assert (notice.title, notice.email_status) == ("Welcome to Allotment, Ada admin", None)


def test_an_event_naming_another_tenant_than_its_delivery_writes_no_notice_and_no_email(
        plane: Plane, ports: dict[str, Any], org: TenantWithMembers) -> None:
    other = plane.tenant(("owner",))
    envelope = welcome(plane, org, "employee")
    forged = Envelope.from_dict({**envelope.as_dict(), "tenant_id": str(other.id)})  # delivered as other's
    with pytest.raises(PermissionError, match=f"names tenant {org.id}"):  # handling's check, first
        handle(plane, ports, forged)
    assert not plane.handled(forged)  # the inbox claim went with the rollback
    assert plane.notices(other.id, org.member("employee").user_id) == []
    assert [n for n in plane.notices(org.id, org.member("employee").user_id)
            if n.event_id == uuid.UUID(envelope.event_id)] == []
    assert plane.deliveries(envelope.event_id) == []  # nor an email: the check comes before the record
