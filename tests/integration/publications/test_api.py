"""The publications API for authors, end to end through the app on real PostgreSQL: drafts
with sections (added, changed, removed, reordered), attachments, audiences, publishing and
scheduling recorded with their command; every bad input is a 4xx naming its field, and a
refused request writes nothing (the tenant's fingerprint is unchanged)."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.integration.publications.conftest import API, PUBLISH, Org, Plane, asset, draft, messages, unit
from tests.integration.web.helpers import assert_refused
from tests.support import tenants


@pytest.fixture(scope="module")
def org(make_org: Callable[..., Org]) -> Org:
    """The module's organisation."""
    return make_org()


@pytest.fixture(scope="module")
def api(plane: Plane) -> FlaskClient:
    """A test client shared by the module."""
    return plane.client()


def test_a_draft_is_written_read_changed_and_deleted(api: FlaskClient, plane: Plane, org: Org) -> None:
    division = unit(plane.provider, org.id, "Division")
    handbook = asset(plane, org.id, org.user("hr_manager"), filename="handbook.txt")
    body = {"title": "  Summer party ", "body": "Join us **on Friday**. <script>alert(1)</script>",
            "audience": {"kind": "org_unit", "org_unit_id": str(division), "sub_units": True},
            "attachments": [str(handbook), str(handbook)],
            "sections": [{"heading": "Where", "body": "The [garden](https://example.com/garden)"},
                         {"heading": "When", "body": "[x](javascript:alert(1))"}]}
    created = api.post(API, json=body, headers=org.auth())
    assert created.status_code == 201, created.json
    view = created.json
    assert created.headers["Location"].endswith(f"{API}/{view['id']}")
    assert (view["title"], view["status"], view["author_name"]) == ("Summer party", "draft",
                                                                    f"Hr_Manager of {org.tenant.slug}")
    # No tag written in the text survives, nor a link's refused target.
    assert view["body_html"] == "<p>Join us <strong>on Friday</strong>. alert(1)</p>"
    assert [(s["position"], s["heading"]) for s in view["sections"]] == [(0, "Where"), (1, "When")]
    assert view["sections"][1]["body_html"] == '<p><a rel="noopener noreferrer nofollow">x</a></p>'
    assert view["audience"] == {"kind": "org_unit", "org_unit_id": str(division), "sub_units": True,
                                "employee_ids": []}
    assert [(a["asset_id"], a["filename"], a["available"]) for a in view["attachments"]] == [
        (str(handbook), "handbook.txt", True)]
    assert api.get(f"{API}/{view['id']}", headers=org.auth("admin")).json == view  # any publisher

    people = [str(org.employees["employee"]), str(org.employees["owner"])]
    changed = api.put(f"{API}/{view['id']}", json={"title": "Summer party!", "body": "",
                                                   "audience": {"kind": "people", "employee_ids": people}},
                      headers=org.auth())
    assert changed.status_code == 200, changed.json
    assert (changed.json["title"], changed.json["body_html"], changed.json["attachments"]) == (
        "Summer party!", "", [])
    assert changed.json["audience"]["employee_ids"] == people
    assert len(changed.json["sections"]) == 2  # a PUT leaves the sections alone

    assert api.delete(f"{API}/{view['id']}", headers=org.auth()).status_code == 204
    assert_refused(api.get(f"{API}/{view['id']}", headers=org.auth()), 404, "publication_id")


def test_sections_are_added_changed_removed_and_reordered(api: FlaskClient, org: Org) -> None:
    view = draft(api, org)
    url = f"{API}/{view['id']}/sections"
    ids = []
    for heading in ("One", "Two", "Three", "Four"):
        added = api.post(url, json={"heading": heading, "body": f"*{heading}*"}, headers=org.auth())
        assert added.status_code == 201, added.json
        ids.append(added.json["id"])
    assert api.get(f"{API}/{view['id']}", headers=org.auth()).json["sections"][3]["position"] == 3

    changed = api.put(f"{url}/{ids[1]}", json={"heading": "Deux", "body": "**2**"}, headers=org.auth())
    assert (changed.json["heading"], changed.json["body_html"]) == ("Deux", "<p><strong>2</strong></p>")

    order = [ids[3], ids[0], ids[2], ids[1]]
    reordered = api.put(f"{url}/order", json={"section_ids": order}, headers=org.auth())
    assert reordered.status_code == 200, reordered.json
    positions = [(s["id"], s["position"]) for s in reordered.json["items"]]
    assert positions == [(i, n) for n, i in enumerate(order)]

    assert api.delete(f"{url}/{ids[0]}", headers=org.auth()).status_code == 204
    sections = api.get(f"{API}/{view['id']}", headers=org.auth()).json["sections"]
    assert [(s["heading"], s["position"]) for s in sections] == [("Four", 0), ("Three", 1), ("Deux", 2)]

    left = [s["id"] for s in sections]
    for order, status in ((left[:2], 422), ([left[0], *left[:2]], 422), ([ids[0], *left[1:]], 404)):
        assert_refused(api.put(f"{url}/order", json={"section_ids": order}, headers=org.auth()), status,
                       "section_ids")
    assert_refused(api.put(f"{url}/{ids[0]}", json={"heading": "Gone"}, headers=org.auth()), 404,
                   "section_id")
    after = api.get(f"{API}/{view['id']}", headers=org.auth()).json["sections"]
    assert after == sections  # refused reorders changed nothing


def test_publishing_records_the_row_and_its_command_together(api: FlaskClient, plane: Plane,
                                                             org: Org) -> None:
    view = draft(api, org, audience={"kind": "people", "employee_ids": [str(org.employees["employee"])]})
    answer = api.post(f"{API}/{view['id']}/publish", json={}, headers=org.auth())
    assert answer.status_code == 202, answer.json
    assert answer.json["status_url"].endswith(f"{API}/{view['id']}")
    assert answer.headers["Location"] == answer.json["status_url"]
    assert answer.json["status"] in ("publishing", "published")  # no worker in this module: publishing
    commands = messages(plane, org.id, PUBLISH, view["id"])
    assert [(m["handler"], m["tenant_id"]) for m in commands] == [
        ("publications.publish_publication", str(org.id))]

    # Out (or going out): it can no longer be changed, published again or deleted.
    url = f"{API}/{view['id']}"
    assert_refused(api.put(url, json={"title": "Changed"}, headers=org.auth()), 409, "status")
    assert_refused(api.post(f"{url}/publish", json={}, headers=org.auth()), 409, "status")
    assert_refused(api.post(f"{url}/sections", json={"heading": "Late"}, headers=org.auth()), 409, "status")
    assert_refused(api.delete(url, headers=org.auth()), 409, "status")
    assert len(messages(plane, org.id, PUBLISH, view["id"])) == 1


def test_scheduling_waits_for_beat_and_can_be_taken_back(api: FlaskClient, plane: Plane, org: Org) -> None:
    view = draft(api, org)
    when = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    answer = api.post(f"{API}/{view['id']}/publish", json={"publish_at": when.isoformat()},
                      headers=org.auth())
    assert answer.status_code == 202, answer.json
    assert (answer.json["status"], datetime.fromisoformat(answer.json["publish_at"])) == ("scheduled", when)
    assert messages(plane, org.id, PUBLISH, view["id"]) == []  # beat sends it when it is due
    back = api.post(f"{API}/{view['id']}/unschedule", headers=org.auth())
    assert (back.status_code, back.json["status"], back.json["publish_at"]) == (200, "draft", None)

    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()  # already due: published now
    assert api.post(f"{API}/{view['id']}/publish", json={"publish_at": past},
                    headers=org.auth()).json["status"] in ("publishing", "published")
    assert len(messages(plane, org.id, PUBLISH, view["id"])) == 1


def test_the_list_shows_every_publication_newest_first(api: FlaskClient,
                                                       make_org: Callable[..., Org]) -> None:
    org = make_org()
    titles = [draft(api, org, title=f"Item {i}")["title"] for i in range(3)]
    listed = api.get(API, query_string={"per_page": 2}, headers=org.auth()).json
    assert (listed["total"], listed["pages"]) == (3, 2)
    assert [p["title"] for p in listed["items"]] == ["Item 2", "Item 1"]
    assert [p["status"] for p in listed["items"]] == ["draft", "draft"]
    second = api.get(API, query_string={"page": 2, "per_page": 2}, headers=org.auth()).json
    assert [p["title"] for p in second["items"]] == [titles[0]]


def test_attachments_are_ready_assets_the_author_can_see(api: FlaskClient, plane: Plane, org: Org) -> None:
    mine = asset(plane, org.id, org.user("hr_manager"))
    processing = asset(plane, org.id, org.user("hr_manager"), status="processing")
    admins = asset(plane, org.id, org.user("admin"))
    assert_refused(api.post(API, json={"title": "A", "attachments": [str(processing)]}, headers=org.auth()),
                   422, "attachments")
    # An HR manager sees only their own assets; the owner (an admin of the tenant) sees every one.
    assert_refused(api.post(API, json={"title": "A", "attachments": [str(admins)]}, headers=org.auth()),
                   404, "attachments")
    both = draft(api, org, "owner", attachments=[str(admins), str(mine)])
    assert [a["asset_id"] for a in both["attachments"]] == [str(admins), str(mine)]


def test_readers_and_others_cannot_write(api: FlaskClient, org: Org) -> None:
    assert api.post(API, json={"title": "Mine"}, headers=org.auth("employee")).status_code == 403
    assert api.get(API, headers=org.auth("employee")).status_code == 403
    assert api.post(API, json={"title": "Mine"}).status_code == 401


# --- bad input ----------------------------------------------------------------------------------

def _people(org: Org) -> list[str]:
    return [str(org.employees["employee"])]


BAD_CREATES: dict[str, tuple[Callable[[Org], Any], int, str]] = {
    "no-title": (lambda o: {"body": "x"}, 422, "title"),
    "blank-title": (lambda o: {"title": "   "}, 422, "title"),
    "long-title": (lambda o: {"title": "x" * 201}, 422, "title"),
    "nul-in-title": (lambda o: {"title": "a\x00b"}, 422, "title"),
    "title-not-text": (lambda o: {"title": 12}, 422, "title"),
    "long-body": (lambda o: {"title": "T", "body": "x" * 100_001}, 422, "body"),
    "control-in-body": (lambda o: {"title": "T", "body": "bell\x07"}, 422, "body"),
    "unknown-field": (lambda o: {"title": "T", "colour": "red"}, 422, "colour"),
    "audience-kind": (lambda o: {"title": "T", "audience": {"kind": "nobody"}}, 422, "audience.kind"),
    "audience-unit-missing": (lambda o: {"title": "T", "audience": {"kind": "org_unit"}}, 422,
                              "audience.org_unit_id"),
    "audience-unit-unknown": (lambda o: {"title": "T", "audience": {"kind": "org_unit",
                                                                    "org_unit_id": str(uuid.uuid4())}},
                              404, "audience.org_unit_id"),
    "audience-unit-not-uuid": (lambda o: {"title": "T", "audience": {"kind": "org_unit", "org_unit_id": "x"}},
                               422, "audience.org_unit_id"),
    "audience-everyone-with-unit": (lambda o: {"title": "T", "audience": {"org_unit_id": str(uuid.uuid4())}},
                                    422, "audience.org_unit_id"),
    "audience-people-empty": (lambda o: {"title": "T", "audience": {"kind": "people"}}, 422,
                              "audience.employee_ids"),
    "audience-people-unknown": (lambda o: {"title": "T", "audience": {
        "kind": "people", "employee_ids": [*_people(o), str(uuid.uuid4())]}}, 404, "audience.employee_ids"),
    "audience-people-not-uuid": (lambda o: {"title": "T", "audience": {"kind": "people",
                                                                       "employee_ids": ["x"]}},
                                 422, "audience.employee_ids.0"),
    "audience-people-on-unit": (lambda o: {"title": "T", "audience": {
        "kind": "everyone", "employee_ids": _people(o)}}, 422, "audience.employee_ids"),
    "attachment-unknown": (lambda o: {"title": "T", "attachments": [str(uuid.uuid4())]}, 404, "attachments"),
    "attachments-too-many": (lambda o: {"title": "T", "attachments": [str(uuid.uuid4()) for _ in range(21)]},
                             422, "attachments"),
    "section-heading-blank": (lambda o: {"title": "T", "sections": [{"heading": ""}]}, 422,
                              "sections.0.heading"),
    "section-body-control": (lambda o: {"title": "T", "sections": [{"heading": "H", "body": "\x00"}]}, 422,
                             "sections.0.body"),
    "body-nested-too-deep": (lambda o: {"title": "T", "body": "> " * 40 + "deep"}, 422, "body"),
    "section-body-nested-too-deep": (lambda o: {"title": "T", "sections": [
        {"heading": "H", "body": "ok"}, {"heading": "H", "body": "*a **a " * 100 + "b" + " a** a*" * 100}]},
        422, "sections.1.body"),
    "sections-too-many": (lambda o: {"title": "T", "sections": [{"heading": "H"}] * 51}, 422, "sections"),
    "body-not-object": (lambda o: ["title"], 422, "body"),
}


@pytest.mark.parametrize("case", list(BAD_CREATES), ids=list(BAD_CREATES))
def test_a_bad_draft_is_refused_naming_its_field(api: FlaskClient, plane: Plane, org: Org, case: str) -> None:
    make_body, status, field = BAD_CREATES[case]
    before = tenants.tenant_fingerprint(plane.provider, org.id)
    assert_refused(api.post(API, json=make_body(org), headers=org.auth()), status, field)
    assert tenants.changed(before, tenants.tenant_fingerprint(plane.provider, org.id)) == []


def test_a_body_that_is_not_json_is_refused(api: FlaskClient, org: Org) -> None:
    assert_refused(api.post(API, data="title=x", headers=org.auth()), 415, "Content-Type")
    assert_refused(api.post(API, data="{", content_type="application/json", headers=org.auth()), 400, "body")


BAD_PUBLISH: dict[str, tuple[dict[str, Any], str]] = {
    "not-a-time": ({"publish_at": "tomorrow"}, "publish_at"),
    "no-time-zone": ({"publish_at": "2031-01-31T09:00:00"}, "publish_at"),
    # PostgreSQL would keep it as the year 10000, which no read could load again
    "beyond-the-calendar": ({"publish_at": "9999-12-31T23:59:59-01:00"}, "publish_at"),
    "unknown-field": ({"when": "now"}, "when"),
}


@pytest.mark.parametrize("case", list(BAD_PUBLISH), ids=list(BAD_PUBLISH))
def test_a_bad_publish_request_is_refused(api: FlaskClient, plane: Plane, org: Org, case: str) -> None:
    view = draft(api, org)
    body, field = BAD_PUBLISH[case]
    before = tenants.tenant_fingerprint(plane.provider, org.id)
    assert_refused(api.post(f"{API}/{view['id']}/publish", json=body, headers=org.auth()), 422, field)
    assert tenants.changed(before, tenants.tenant_fingerprint(plane.provider, org.id)) == []


def test_publishing_to_a_unit_deleted_since_the_draft_is_refused(api: FlaskClient, plane: Plane,
                                                                  org: Org) -> None:
    division = unit(plane.provider, org.id, "Doomed")
    view = draft(api, org, audience={"kind": "org_unit", "org_unit_id": str(division)})
    assert api.delete(f"/api/v1/employment/org-units/{division}", headers=org.auth()).status_code == 204
    before = tenants.tenant_fingerprint(plane.provider, org.id)
    assert_refused(api.post(f"{API}/{view['id']}/publish", json={}, headers=org.auth()), 404,
                   "audience.org_unit_id")
    assert tenants.changed(before, tenants.tenant_fingerprint(plane.provider, org.id)) == []


BAD_QUERIES = {"page-zero": ({"page": "0"}, "page"), "per-page-big": ({"per_page": "101"}, "per_page"),
               "unknown": ({"sort": "title"}, "sort")}


@pytest.mark.parametrize("case", list(BAD_QUERIES), ids=list(BAD_QUERIES))
def test_a_bad_list_query_is_refused(api: FlaskClient, org: Org, case: str) -> None:
    query, field = BAD_QUERIES[case]
    assert_refused(api.get(API, query_string=query, headers=org.auth()), 422, field)
    assert_refused(api.get(f"{API}/received", query_string=query, headers=org.auth("employee")), 422, field)
