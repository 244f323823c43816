"""Publishing end to end with real workers: the ``publications`` worker sends a publication
out (delivery rows, ``PublicationPublished``), the ``notifications`` worker turns it into one
notice per recipient with an account; readers see what is addressed to them, newest first,
and opening one records its read receipt once; authors see the read count."""
from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from domain.messaging import handling
from domain.messaging.contracts.publications import PublishPublicationV1
from domain.messaging.outbox import Envelope
from domain.messaging.tables import outbox
from domain.publications import handlers
from domain.publications.models import Publication
from tests.integration.publications.conftest import (
    API,
    PUBLISH,
    PUBLISHED,
    Org,
    Plane,
    add_reader,
    asset,
    deliveries,
    draft,
    employ,
    messages,
    notices_of,
    publish,
    status_of,
    unit,
    wait_published,
)
from tests.integration.web.helpers import assert_refused
from tests.support import refs, tenants
from tests.support.tenants import bearer
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("workers")


@pytest.fixture(scope="module")
def api(plane: Plane) -> FlaskClient:
    """A test client shared by the module."""
    return plane.client()


def test_a_publication_reaches_its_audience_and_counts_who_read_it(api: FlaskClient, plane: Plane,
                                                                  make_org: Callable[..., Org]) -> None:
    org = make_org()
    team = unit(plane.provider, org.id, "Team")
    reader, reader_employee, reader_token = add_reader(plane, org, unit_id=team)
    outsider, _, outsider_token = add_reader(plane, org)  # not in the team
    (no_account,) = employ(plane.provider, org.id, ["no-account@example.com"], unit_id=team)
    handbook = asset(plane, org.id, org.user("hr_manager"), content=b"read me\n")
    view = draft(api, org, title="Team news", body="Hello **team**",
                 audience={"kind": "org_unit", "org_unit_id": str(team)}, attachments=[str(handbook)],
                 sections=[{"heading": "Agenda", "body": "1. coffee"}])
    publish(api, org, view["id"])
    wait_published(plane, org.id, view["id"])

    assert deliveries(plane, org.id, view["id"]) == {reader_employee: (reader.user_id, None),
                                                     no_account: (None, None)}
    (part,) = messages(plane, org.id, PUBLISHED, view["id"])
    assert (part["handler"], part["recipient_ids"], part["part"], part["parts"]) == (
        "notifications.record_publication_notice", [str(reader.user_id)], 1, 1)
    wait_for(lambda: notices_of(plane, org.id, "Team news") == {reader.user_id: 1}, timeout=60,
             message="the reader's notice")
    status = api.get(f"{API}/{view['id']}", headers=org.auth()).json
    assert (status["status"], status["recipients"], status["notified"], status["read"]) == (
        "published", 2, 1, 0)

    mine = api.get(f"{API}/received", headers=bearer(reader_token)).json
    assert [(p["id"], p["title"], p["read_at"]) for p in mine["items"]] == [(view["id"], "Team news", None)]
    assert api.get(f"{API}/received", headers=bearer(outsider_token)).json["items"] == []
    assert_refused(api.get(f"{API}/received/{view['id']}", headers=bearer(outsider_token)), 404,
                   "publication_id")

    opened = api.get(f"{API}/received/{view['id']}", headers=bearer(reader_token))
    assert opened.status_code == 200, opened.json
    assert (opened.json["body_html"], [s["heading"] for s in opened.json["sections"]]) == (
        "<p>Hello <strong>team</strong></p>", ["Agenda"])
    first_read = opened.json["read_at"]
    again = api.get(f"{API}/received/{view['id']}", headers=bearer(reader_token)).json
    assert again["read_at"] == first_read  # recorded once
    assert api.get(f"{API}/{view['id']}", headers=org.auth()).json["read"] == 1
    assert api.get(f"{API}/received", headers=bearer(reader_token)).json["items"][0]["read_at"] == first_read
    listed = api.get(API, headers=org.auth()).json["items"]
    assert [(p["recipients"], p["read"]) for p in listed if p["id"] == view["id"]] == [(2, 1)]

    link = api.get(f"{API}/received/{view['id']}/attachments/{handbook}", headers=bearer(reader_token))
    assert link.status_code == 200, link.json
    with api.get(link.json["url"].removeprefix(plane.settings.public_url.rstrip("/"))) as download:
        assert download.get_data() == b"read me\n"
    assert_refused(api.get(f"{API}/received/{view['id']}/attachments/{handbook}",
                           headers=bearer(outsider_token)), 404, "publication_id")
    assert_refused(api.get(f"{API}/received/{view['id']}/attachments/{uuid.uuid4()}",
                           headers=bearer(reader_token)), 404, "asset_id")
    assert outsider.user_id not in notices_of(plane, org.id, "Team news")


def test_a_delivery_is_read_by_the_account_it_names_whatever_becomes_of_the_work_email(
        api: FlaskClient, plane: Plane, make_org: Callable[..., Org]) -> None:
    org = make_org()
    team = unit(plane.provider, org.id, "Payroll readers")
    reader, reader_employee, reader_token = add_reader(plane, org, unit_id=team)
    newcomer = tenants.create_account(plane.provider, prefix="newcomer")  # not a member yet
    (newcomer_employee,) = employ(plane.provider, org.id, [newcomer.email], unit_id=team, prefix="Newcomer")
    intruder = tenants.add_member(plane.provider, org.id, "employee")  # a member, not an employee
    as_intruder = bearer(tenants.access_token(api, intruder))
    view = draft(api, org, title="Salaries", audience={"kind": "org_unit", "org_unit_id": str(team)})
    publish(api, org, view["id"])
    wait_published(plane, org.id, view["id"])
    assert deliveries(plane, org.id, view["id"]) == {reader_employee: (reader.user_id, None),
                                                     newcomer_employee: (None, None)}

    # The newcomer's account joins: their delivery named no account, so they read it as the
    # employee with their address, and the first opening makes it theirs.
    tenants.add_member(plane.provider, org.id, "employee", account=newcomer)
    as_newcomer = bearer(tenants.access_token(api, newcomer))
    assert [p["id"] for p in api.get(f"{API}/received", headers=as_newcomer).json["items"]] == [view["id"]]
    assert api.get(f"{API}/received/{view['id']}", headers=as_newcomer).status_code == 200
    (claimed, read_at) = deliveries(plane, org.id, view["id"])[newcomer_employee]
    assert claimed == newcomer.user_id and read_at is not None

    for employee, name, owner in ((reader_employee, "Reader", bearer(reader_token)),
                                  (newcomer_employee, "Newcomer", as_newcomer)):
        # Someone gives the employee's work email to the intruder's address, then takes it back.
        _work_email(api, org, employee, intruder.email, name=name, unit_id=team)
        assert api.get(f"{API}/received", headers=as_intruder).json["items"] == []
        assert_refused(api.get(f"{API}/received/{view['id']}", headers=as_intruder), 404, "publication_id")
        assert api.get(f"{API}/received/{view['id']}", headers=owner).status_code == 200
        _work_email(api, org, employee, refs.email("restored"), name=name, unit_id=team)
    assert api.get(f"{API}/{view['id']}", headers=org.auth()).json["read"] == 2


def _work_email(api: FlaskClient, org: Org, employee_id: uuid.UUID, email: str, *, name: str,
                unit_id: uuid.UUID) -> None:
    """Change an employee's work email through employment's API."""
    response = api.put(f"/api/v1/employment/employees/{employee_id}", headers=org.auth(),
                       json={"name": name, "work_email": email, "org_unit_id": str(unit_id)})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]


def test_readers_see_newest_first_and_only_what_is_out(api: FlaskClient, plane: Plane,
                                                      make_org: Callable[..., Org]) -> None:
    org = make_org()
    _, _, token = add_reader(plane, org)
    ids = []
    for title in ("First", "Second", "Third"):
        view = draft(api, org, title=title)
        publish(api, org, view["id"])
        wait_published(plane, org.id, view["id"])
        ids.append(view["id"])
    draft(api, org, title="Not yet")  # a draft reaches nobody
    listed = api.get(f"{API}/received", query_string={"per_page": 2}, headers=bearer(token)).json
    assert ([p["title"] for p in listed["items"]], listed["total"]) == (["Third", "Second"], 3)
    rest = api.get(f"{API}/received", query_string={"page": 2, "per_page": 2}, headers=bearer(token)).json
    assert [p["id"] for p in rest["items"]] == [ids[0]]


def test_a_redelivered_command_publishes_once(api: FlaskClient, plane: Plane,
                                              make_org: Callable[..., Org]) -> None:
    org = make_org()
    view = draft(api, org, title="Once")
    publish(api, org, view["id"])
    wait_published(plane, org.id, view["id"])
    with plane.provider.tenant(org.id) as db:
        row = db.execute(select(outbox).where(outbox.c.type == PUBLISH)
                         .where(outbox.c.payload["publication_id"].astext == view["id"])).one()
    envelope = Envelope(id=str(row.id), event_id=str(row.event_id), type=row.type, version=row.version,
                        handler=row.handler, payload=row.payload, origin="trial", tenant_id=str(org.id),
                        correlation_id=row.correlation_id)
    before = (deliveries(plane, org.id, view["id"]), messages(plane, org.id, PUBLISHED, view["id"]))
    outcome = handling.handle(plane.provider, envelope, PublishPublicationV1, "tenant",
                              handlers.publish_publication)
    assert outcome.duplicate and outcome.emitted == []
    # A second command for the same publication (not a redelivery) finds it out already.
    fresh = Envelope(**{**envelope.as_dict(), "id": str(uuid.uuid4()), "event_id": str(uuid.uuid4())})
    assert handling.handle(plane.provider, fresh, PublishPublicationV1, "tenant",
                           handlers.publish_publication).emitted == []
    assert (deliveries(plane, org.id, view["id"]), messages(plane, org.id, PUBLISHED, view["id"])) == before


def test_a_body_saved_before_the_nesting_limit_fails_its_publication_with_the_reason(
        api: FlaskClient, plane: Plane, make_org: Callable[..., Org]) -> None:
    org = make_org()
    view = draft(api, org, title="Quoted", sections=[{"heading": "Fine", "body": "fine"}])
    # Saved by a version that let it through: the API now refuses such a body (test_api).
    with plane.provider.tenant(org.id) as db:
        row = db.get(Publication, uuid.UUID(view["id"]))
        assert row is not None
        row.body = "> " * 100 + "deep"
        db.commit()
    publish(api, org, view["id"])
    wait_for(lambda: status_of(plane, org.id, view["id"]) == "failed", timeout=60,
             message="the publication failed")
    failed = api.get(f"{API}/{view['id']}", headers=org.auth()).json
    assert failed["error"].startswith("body: must not nest quotes, lists or emphasis this deep")
    assert (failed["recipients"], deliveries(plane, org.id, view["id"]), messages(plane, org.id, PUBLISHED,
                                                                                  view["id"])) == (0, {}, [])
    # Failed: nothing went out, so its author can mend it and publish it again.
    mended = api.put(f"{API}/{view['id']}", json={"title": "Quoted", "body": "> shallow"}, headers=org.auth())
    assert mended.status_code == 200, mended.json
    publish(api, org, view["id"])
    wait_published(plane, org.id, view["id"])
    assert api.get(f"{API}/{view['id']}", headers=org.auth()).json["body_html"] == (
        "<blockquote>\n<p>shallow</p>\n</blockquote>")
