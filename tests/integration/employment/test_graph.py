"""The relation graph on a generated tree of 2,000 employees, through the API: the chain of
command, everyone under a person, direct reports, a unit's chart; a reports_to edge that
would close a cycle is refused (also when two writers race); an edge to another tenant's
GUID is refused and another tenant's edges cannot be read or removed.

Every test runs twice: for a trial tenant (shared database, RLS) and for the same kind of
tenant once promoted to a database of its own. The graph stays in the management database
either way; only where the employees are read from changes.
"""
from __future__ import annotations

import random
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient

from domain.employment import relations
from domain.graph import queries as graph_queries
from domain.graph import services as graph
from domain.graph.services import CycleRefused
from domain.tenancy import promotion
from domain.tenancy.copying import connect
from tests.integration.employment.conftest import API, Org, Plane, Tree, add_people, edge_count, make_tree
from tests.integration.web.helpers import assert_refused
from tests.support.waiting import wait_for

SIZE = 2_000
SAMPLE = 40


@dataclass(frozen=True)
class World:
    """Tenant A with the tree (on trial or promoted), tenant B (trial) with a few people."""

    placement: str
    a: Org
    tree: Tree
    b: Org
    b_people: list[uuid.UUID]


def promote(plane: Plane, tenant_id: uuid.UUID) -> None:
    """Move the tenant to a database of its own, in this process (DESIGN §5)."""
    with plane.provider.management() as session:
        promotion_id = promotion.request_promotion(session, tenant_id, reason="operator")
        session.commit()
    result = promotion.run(plane.provider, promotion_id)
    assert result.progress.status == "completed", result.progress.error
    assert plane.provider.route(tenant_id).db_key.startswith("dedicated:")


@pytest.fixture(scope="module", params=["trial", "dedicated"])
def world(request: pytest.FixtureRequest, plane: Plane, make_org) -> World:  # type: ignore[no-untyped-def]
    """The tree of 2,000 in tenant A, then A promoted for the "dedicated" run."""
    a, b = make_org(), make_org()
    tree = make_tree(plane.provider, a.id, SIZE)
    b_people = [p for p, _ in add_people(plane.provider, b.id, 3, unit_id=None, prefix="b")]
    if request.param == "dedicated":
        promote(plane, a.id)
    return World(request.param, a, tree, b, b_people)


@pytest.fixture
def api(plane: Plane) -> FlaskClient:
    """A test client (JSON calls carry their token)."""
    return plane.client()


def _sample(tree: Tree, count: int, seed: int = 3) -> list[uuid.UUID]:
    return random.Random(seed).sample(tree.people, count)


def test_the_chain_of_command_goes_up_to_the_top(api: FlaskClient, world: World) -> None:
    tree = world.tree
    for person in _sample(tree, SAMPLE):
        response = api.get(f"{API}/employees/{person}/chain", headers=world.a.auth("employee"))
        assert response.status_code == 200, response.json
        items = response.json["items"]
        assert [uuid.UUID(i["person"]["id"]) for i in items] == tree.chain(person)
        assert [i["depth"] for i in items] == list(range(1, len(items) + 1))
        assert [i["person"]["work_email"] for i in items] == [tree.emails[p] for p in tree.chain(person)]
    assert api.get(f"{API}/employees/{tree.top}/chain", headers=world.a.auth()).json["items"] == []


def test_everyone_under_a_person_at_any_depth(api: FlaskClient, world: World) -> None:
    tree = world.tree
    for person in [tree.top, *_sample(tree, 10, seed=5)]:
        items: list[dict[str, Any]] = []
        for page in range(1, 4):  # nobody has more than 3,000 under them: SIZE is 2,000
            response = api.get(f"{API}/employees/{person}/subordinates", query_string={"page": page},
                               headers=world.a.auth("employee"))
            assert response.status_code == 200
            items += response.json["items"]
            assert (response.json["total"], response.json["per_page"]) == (len(tree.under(person)), 1_000)
        assert len(items) == len(tree.under(person))
        found = {uuid.UUID(i["person"]["id"]): i["depth"] for i in items}
        assert found == tree.under(person)
        # Nearest first, then by id, across pages: an order that one person's move cannot reshuffle.
        order = [(i["depth"], i["person"]["id"]) for i in items]
        assert order == sorted(order)
        managers = {uuid.UUID(i["person"]["id"]): uuid.UUID(i["manager_id"]) for i in items}
        assert all(tree.manager[p] == m for p, m in managers.items())
    assert len(tree.under(tree.top)) == SIZE - 1
    small = api.get(f"{API}/employees/{tree.top}/subordinates", query_string={"page": 3, "per_page": 7},
                    headers=world.a.auth("employee")).json
    assert (len(small["items"]), small["page"], small["pages"]) == (7, 3, -(-(SIZE - 1) // 7))
    for bad in ({"per_page": 1_001}, {"per_page": 0}, {"page": "x"}):
        assert_refused(api.get(f"{API}/employees/{tree.top}/subordinates", query_string=bad,
                               headers=world.a.auth("employee")), 422, next(iter(bad)))


def test_direct_reports(api: FlaskClient, world: World) -> None:
    tree = world.tree
    for person in [tree.top, *_sample(tree, 20, seed=9)]:
        response = api.get(f"{API}/employees/{person}/direct-reports", headers=world.a.auth("employee"))
        assert response.status_code == 200
        assert {uuid.UUID(i["id"]) for i in response.json["items"]} == set(tree.reports[person])


def test_the_org_chart_of_the_unit_is_the_whole_tree(api: FlaskClient, world: World) -> None:
    tree = world.tree
    response = api.get(f"{API}/org-units/{tree.unit_id}/chart", headers=world.a.auth("employee"))
    assert response.status_code == 200
    items = response.json["items"]
    assert len(items) == SIZE
    first = items[0]
    assert (uuid.UUID(first["person"]["id"]), first["manager_id"], first["depth"]) == (tree.top, None, 0)
    placed: set[uuid.UUID] = set()
    for item in items:  # every person after their manager, with their manager and depth
        person = uuid.UUID(item["person"]["id"])
        manager = tree.manager[person]
        assert item["manager_id"] == (str(manager) if manager else None)
        assert manager is None or manager in placed
        assert item["depth"] == len(tree.chain(person))
        placed.add(person)


def test_a_reports_to_edge_that_closes_a_cycle_is_refused(api: FlaskClient, plane: Plane,
                                                         world: World) -> None:
    tree = world.tree
    deep = max(tree.people, key=lambda p: len(tree.chain(p)))
    middle = tree.chain(deep)[len(tree.chain(deep)) // 2]
    edges = edge_count(plane.provider, world.a.id)
    # The top reporting to someone under them.
    body = {"relation": "reports_to", "from_id": str(tree.top), "to_id": str(deep)}
    refused = assert_refused(api.post(f"{API}/relations", json=body, headers=world.a.auth()), 409, "to_id")
    assert "cycle" in refused["reason"]
    # Someone in the middle moved under one of their own reports (through the employee form's field).
    employee = api.get(f"{API}/employees/{middle}", headers=world.a.auth()).json
    change = {k: employee[k] for k in ("name", "work_email", "status")} | {"manager_email": tree.emails[deep]}
    assert_refused(api.put(f"{API}/employees/{middle}", json=change, headers=world.a.auth()), 409,
                   "manager_email")
    # Reporting to oneself.
    body = {"relation": "reports_to", "from_id": str(deep), "to_id": str(deep)}
    assert_refused(api.post(f"{API}/relations", json=body, headers=world.a.auth()), 409, "to_id")
    assert edge_count(plane.provider, world.a.id) == edges
    chain = api.get(f"{API}/employees/{deep}/chain", headers=world.a.auth()).json["items"]
    assert [uuid.UUID(i["person"]["id"]) for i in chain] == tree.chain(deep)


def _graph_lock_waiters(plane: Plane, tenant_id: uuid.UUID) -> int:
    cls, key = graph.lock_key(tenant_id)
    with connect(plane.provider.url_of("management")) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                           "AND classid = %s AND objid = %s AND objsubid = 2",
                           (cls, key & 0xFFFFFFFF)).fetchone()
    return int(row[0]) if row else 0


def test_two_writers_cannot_close_a_cycle_together(plane: Plane, world: World) -> None:
    # x -> y and y -> x are each fine alone; written at once, exactly one may pass. Both
    # writers are held at the tenant's graph lock (taken here first), then let go together.
    x, y = (p for p, _ in add_people(plane.provider, world.a.id, 2, unit_id=None, prefix="racer"))
    outcomes: dict[str, object] = {}

    def write(name: str, source: uuid.UUID, target: uuid.UUID) -> None:
        with plane.provider.tenant(world.a.id) as db, plane.provider.management() as graph_db:
            try:
                relations.link(db, graph_db, world.a.id, relation="reports_to", from_id=source, to_id=target)
                graph_db.commit()
                db.commit()
                outcomes[name] = "linked"
            except CycleRefused as exc:
                outcomes[name] = exc

    cls, key = graph.lock_key(world.a.id)
    with connect(plane.provider.url_of("management")) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s, %s)", (cls, key))
        writers = [threading.Thread(target=write, args=("xy", x, y)),
                   threading.Thread(target=write, args=("yx", y, x))]
        for writer in writers:
            writer.start()
        wait_for(lambda: _graph_lock_waiters(plane, world.a.id) == 2, timeout=30,
                 message="both writers to wait for the graph lock")
        holder.rollback()
    for writer in writers:
        writer.join(30)
    assert sorted(o if isinstance(o, str) else "refused" for o in outcomes.values()) == ["linked", "refused"]
    with plane.provider.management() as graph_db:
        linked = graph_queries.targets(graph_db, world.a.id, "reports_to", [x, y])
    assert len(linked) == 1


def test_edges_to_another_tenants_guids_are_refused_and_unreadable(api: FlaskClient, plane: Plane,
                                                                   world: World) -> None:
    tree, a, b = world.tree, world.a, world.b
    a_person, b_person = tree.people[5], world.b_people[0]
    before = (edge_count(plane.provider, a.id), edge_count(plane.provider, b.id))
    for token, body, field in [
        (b, {"from_id": b_person, "to_id": a_person}, "to_id"),    # B's person under A's
        (b, {"from_id": a_person, "to_id": b_person}, "from_id"),  # A's person under B's
        (b, {"from_id": a_person, "to_id": tree.top}, "from_id"),  # A's people, B's token
        (a, {"from_id": a_person, "to_id": b_person}, "to_id"),    # A's person under B's, A's token
    ]:
        for relation in ("reports_to", "mentor_of"):
            json = {"relation": relation, "from_id": str(body["from_id"]), "to_id": str(body["to_id"])}
            assert_refused(api.post(f"{API}/relations", json=json, headers=token.auth()), 404, field)
    for path in ("chain", "subordinates", "direct-reports", "relations"):
        assert_refused(api.get(f"{API}/employees/{a_person}/{path}", headers=b.auth()), 404, "employee_id")
    manager = tree.manager[a_person]
    response = api.delete(f"{API}/relations/reports_to/{a_person}/{manager}", headers=b.auth())
    assert_refused(response, 404, "relation")
    assert (edge_count(plane.provider, a.id), edge_count(plane.provider, b.id)) == before
    with plane.provider.management() as graph_db:  # walks never leave their tenant
        assert graph_queries.subordinates(graph_db, b.id, tree.top) == []
        assert graph_queries.chain(graph_db, b.id, a_person) == []
        assert graph_queries.targets(graph_db, b.id, "reports_to", [a_person]) == {}
