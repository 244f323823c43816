"""Audiences resolve through employment's public queries on nested org units: a unit alone
or with every unit below it (any depth), a list of people, everyone (not those who left);
each checked on the delivery rows the publications worker writes, then on the query itself."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from domain.employment.models import Employee
from domain.publications import audience, scheduling
from domain.publications.audience import Audience
from tests.integration.publications.conftest import (
    API,
    Org,
    Plane,
    deliveries,
    draft,
    employ,
    publish,
    status_of,
    unit,
    wait_published,
)
from tests.support.waiting import wait_for
from workers import publisher

pytestmark = pytest.mark.usefixtures("workers")


@dataclass(frozen=True)
class Tree:
    """Units head > (sales > emea, it) and their people by unit name; one person left."""

    org: Org
    units: dict[str, uuid.UUID]
    people: dict[str, list[uuid.UUID]]
    left: uuid.UUID

    def of(self, *names: str) -> set[uuid.UUID]:
        """The people of these units."""
        return {p for name in names for p in self.people[name]}


@pytest.fixture(scope="module")
def tree(plane: Plane, make_org: Callable[..., Org]) -> Tree:
    """An organisation with a three-level unit tree and two or three people in each unit."""
    org = make_org()
    head = unit(plane.provider, org.id, "Head")
    sales = unit(plane.provider, org.id, "Sales", head)
    emea = unit(plane.provider, org.id, "EMEA", sales)
    it = unit(plane.provider, org.id, "IT", head)
    units = {"head": head, "sales": sales, "emea": emea, "it": it}
    people = {name: employ(plane.provider, org.id, [f"{name}-{i}-{uuid.uuid4().hex[:6]}@example.com"
                                                    for i in range(3 if name == "emea" else 2)],
                           unit_id=unit_id, prefix=name.title())
              for name, unit_id in units.items()}
    (left,) = employ(plane.provider, org.id, [f"gone-{uuid.uuid4().hex[:6]}@example.com"], unit_id=emea)
    with plane.provider.tenant(org.id) as db:
        db.get(Employee, left).status = "left"  # type: ignore[union-attr]
        db.commit()
    return Tree(org, units, people, left)


CASES: dict[str, tuple[Callable[[Tree], dict[str, Any]], Callable[[Tree], set[uuid.UUID]]]] = {
    "unit-alone": (lambda t: {"kind": "org_unit", "org_unit_id": str(t.units["sales"])},
                   lambda t: t.of("sales")),
    "unit-with-sub-units": (lambda t: {"kind": "org_unit", "org_unit_id": str(t.units["sales"]),
                                       "sub_units": True}, lambda t: t.of("sales", "emea")),
    "top-with-sub-units": (lambda t: {"kind": "org_unit", "org_unit_id": str(t.units["head"]),
                                      "sub_units": True}, lambda t: t.of("head", "sales", "emea", "it")),
    "leaf-with-sub-units": (lambda t: {"kind": "org_unit", "org_unit_id": str(t.units["emea"]),
                                       "sub_units": True}, lambda t: t.of("emea")),
    "people": (lambda t: {"kind": "people", "employee_ids": [str(t.people["emea"][0]), str(t.left),
                                                             str(t.people["it"][1])]},
               lambda t: {t.people["emea"][0], t.left, t.people["it"][1]}),  # named: even who left
    "everyone": (lambda t: {"kind": "everyone"},
                 lambda t: t.of("head", "sales", "emea", "it") | set(t.org.employees.values())),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_publication_reaches_exactly_its_audience(plane: Plane, tree: Tree, case: str) -> None:
    body, expected = CASES[case]
    client: FlaskClient = plane.client()
    view = draft(client, tree.org, audience=body(tree))
    publish(client, tree.org, view["id"])
    wait_published(plane, tree.org.id, view["id"])
    reached = set(deliveries(plane, tree.org.id, view["id"]))
    assert reached == expected(tree)
    assert tree.left not in reached or case == "people"


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_the_audience_query_resolves_the_same(plane: Plane, tree: Tree, case: str) -> None:
    body, expected = CASES[case]
    raw = body(tree)
    asked = Audience(raw["kind"], uuid.UUID(raw["org_unit_id"]) if "org_unit_id" in raw else None,
                     raw.get("sub_units", False), tuple(uuid.UUID(i) for i in raw.get("employee_ids", ())))
    with plane.provider.tenant(tree.org.id) as db:
        assert set(audience.resolve(db, audience.checked(db, asked))) == expected(tree)


def test_a_unit_deleted_before_it_goes_out_fails_it_with_the_reason(plane: Plane, tree: Tree) -> None:
    client: FlaskClient = plane.client()
    doomed = unit(plane.provider, tree.org.id, "Doomed")
    view = draft(client, tree.org, audience={"kind": "org_unit", "org_unit_id": str(doomed)})
    when = datetime.now(UTC) + timedelta(hours=1)
    assert publish(client, tree.org, view["id"], publish_at=when.isoformat())["status"] == "scheduled"
    gone = client.delete(f"/api/v1/employment/org-units/{doomed}", headers=tree.org.auth())
    assert gone.status_code == 204
    # Beat claims it once it is due; the worker then finds no unit to send it to.
    envelopes = scheduling.claim_due(plane.provider, tree.org.id, now=when + timedelta(seconds=1))
    assert publisher.publish(plane.app.extensions["allotment.celery"], envelopes) == 1
    wait_for(lambda: status_of(plane, tree.org.id, view["id"]) == "failed", timeout=60,
             message="the publication failed")
    failed = client.get(f"{API}/{view['id']}", headers=tree.org.auth()).json
    assert (failed["error"], failed["recipients"]) == ("the org unit of its audience no longer exists", 0)
    assert deliveries(plane, tree.org.id, view["id"]) == {}
    # Failed: nothing went out, so it can be pointed elsewhere and published again.
    fixed = client.put(f"{API}/{view['id']}", json={"title": view["title"], "audience": {"kind": "everyone"}},
                       headers=tree.org.auth())
    assert fixed.status_code == 200, fixed.json
    publish(client, tree.org, view["id"])
    wait_published(plane, tree.org.id, view["id"])
