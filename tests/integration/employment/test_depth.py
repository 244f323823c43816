"""The depth caps of the org unit tree (``MAX_UNIT_DEPTH`` levels) and of the reporting
graph (``MAX_DEPTH`` edges), through the API: every walk reads that deep and no deeper, so
a write that would make a chain deeper is refused, and so is a write whose cycle check
meets a chain already past the cap (made before the cap was held; written here straight
into the tables with one INSERT ... SELECT): the walk cannot see past it, and before the
fix such a write closed a loop."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select, text

from domain.employment import relations
from domain.employment.models import OrgUnit
from domain.employment.queries import MAX_UNIT_DEPTH
from domain.employment.relations import REPORTS_TO
from domain.graph import queries as graph_queries
from domain.graph import services as graph
from domain.graph.queries import MAX_DEPTH
from tests.integration.employment.conftest import API, Org, Plane, add_people, edge_count
from tests.integration.web.helpers import assert_refused


def unit_chain(plane: Plane, org: Org, levels: int) -> list[uuid.UUID]:
    """``levels`` org units, each under the one before (the first at the top)."""
    ids = [uuid.uuid4() for _ in range(levels)]
    with plane.provider.tenant(org.id) as db:
        db.execute(text("""
            INSERT INTO org_units (id, tenant_id, name, parent_id)
            SELECT unit.id, :tenant, 'Level ' || unit.n, unit.parent_id
              FROM unnest(CAST(:ids AS uuid[]), CAST(:parents AS uuid[]))
                   WITH ORDINALITY AS unit(id, parent_id, n)"""),
                   {"tenant": org.id, "ids": ids, "parents": [None, *ids[:-1]]})
        db.commit()
    return ids


def _unit(api: FlaskClient, org: Org, name: str, parent: uuid.UUID | str | None = None) -> dict[str, str]:
    made = api.post(f"{API}/org-units", json={"name": name, "parent_id": parent and str(parent)},
                    headers=org.auth())
    assert made.status_code == 201, made.json
    return made.json  # type: ignore[no-any-return]


def _parent_of(plane: Plane, org: Org, unit_id: uuid.UUID | str) -> uuid.UUID | None:
    with plane.provider.tenant(org.id) as db:
        return db.scalar(select(OrgUnit.parent_id).where(OrgUnit.id == uuid.UUID(str(unit_id))))


def test_a_unit_tree_deeper_than_the_cap_takes_no_loop_and_grows_no_deeper(
        plane: Plane, make_org: Callable[[], Org]) -> None:
    org, api = make_org(), plane.client()
    chain = unit_chain(plane, org, MAX_UNIT_DEPTH + 2)  # the last one is a level past the cap
    top, bottom = chain[0], chain[-1]
    # The top moved under the bottom: the walk down from the top stops a level short of it.
    move = api.put(f"{API}/org-units/{top}", json={"name": "Level 1", "parent_id": str(bottom)},
                   headers=org.auth())
    assert "cannot be checked" in assert_refused(move, 409, "parent_id")["reason"]
    assert _parent_of(plane, org, top) is None
    elsewhere = _unit(api, org, "Elsewhere")
    move = api.put(f"{API}/org-units/{elsewhere['id']}", json={"name": "Elsewhere", "parent_id": str(bottom)},
                   headers=org.auth())
    assert_refused(move, 409, "parent_id")
    # A new unit is at most MAX_UNIT_DEPTH levels down: under chain[-3] (depth 999), not under chain[-2].
    assert _unit(api, org, "Deepest", chain[-3])["depth"] == MAX_UNIT_DEPTH
    refused = api.post(f"{API}/org-units", json={"name": "Too deep", "parent_id": str(chain[-2])},
                       headers=org.auth())
    assert "at most 1,000 levels" in assert_refused(refused, 409, "parent_id")["reason"]
    # A unit with a sub-unit moves where both fit, and not where the sub-unit would not.
    branch = _unit(api, org, "Branch")
    _unit(api, org, "Twig", branch["id"])
    too_deep = api.put(f"{API}/org-units/{branch['id']}", headers=org.auth(),
                       json={"name": "Branch", "parent_id": str(chain[-3])})
    assert_refused(too_deep, 409, "parent_id")
    moved = api.put(f"{API}/org-units/{branch['id']}", headers=org.auth(),
                    json={"name": "Branch", "parent_id": str(chain[-4])})
    assert (moved.status_code, moved.json["depth"]) == (200, MAX_UNIT_DEPTH - 1)
    # Renaming a unit in place is no move: the chain past the cap does not stop it.
    renamed = api.put(f"{API}/org-units/{bottom}", json={"name": "Renamed", "parent_id": str(chain[-2])},
                      headers=org.auth())
    assert renamed.status_code == 200, renamed.json


def reporting_chain(plane: Plane, org: Org, guids: list[uuid.UUID]) -> None:
    """Each of ``guids`` reports to the next, written into the graph in one statement."""
    with plane.provider.management() as graph_db:
        graph_db.execute(text("""
            INSERT INTO relation_edges (tenant_id, relation, from_id, to_id)
            SELECT :tenant, 'reports_to', pair.from_id, pair.to_id
              FROM unnest(CAST(:sources AS uuid[]), CAST(:targets AS uuid[])) AS pair(from_id, to_id)"""),
                         {"tenant": org.id, "sources": guids[:-1], "targets": guids[1:]})
        graph_db.commit()


def _link(api: FlaskClient, org: Org, source: uuid.UUID, target: uuid.UUID) -> Any:
    body = {"relation": "reports_to", "from_id": str(source), "to_id": str(target)}
    return api.post(f"{API}/relations", json=body, headers=org.auth())


def test_a_reporting_chain_past_the_cap_takes_no_cycle_and_grows_no_longer(
        plane: Plane, make_org: Callable[[], Org]) -> None:
    org, api = make_org(), plane.client()
    people = add_people(plane.provider, org.id, 9, unit_id=None, prefix="deep")
    (x0, x1, x2, x3, top, z, w, v, u), emails = [p for p, _ in people], dict(people)
    # x0 -> x1 -> x2 -> x3 -> ... -> top: MAX_DEPTH + 2 edges (the middle GUIDs are nobody's).
    reporting_chain(plane, org, [x0, x1, x2, x3, *(uuid.uuid4() for _ in range(MAX_DEPTH - 2)), top])
    edges = edge_count(plane.provider, org.id)
    # The top reporting to the bottom closes a cycle the walk up from x0 cannot reach.
    assert "cannot be checked" in assert_refused(_link(api, org, top, x0), 409, "to_id")["reason"]
    change = {"name": "Top", "work_email": emails[top], "status": "active", "manager_email": emails[x0]}
    assert_refused(api.put(f"{API}/employees/{top}", json=change, headers=org.auth()), 409, "manager_email")
    # x2 has MAX_DEPTH edges above: nobody may report to them; x3 has one fewer.
    assert "at most 10,000 edges" in assert_refused(_link(api, org, z, x2), 409, "to_id")["reason"]
    assert _link(api, org, z, x3).status_code == 201
    assert edge_count(plane.provider, org.id) == edges + 1
    # The import's batch path: v reports to w, so w may not go under x3; u may.
    assert _link(api, org, v, w).status_code == 201
    with plane.provider.tenant(org.id) as db, plane.provider.management() as graph_db:
        refused = graph.set_targets(graph_db, org.id, REPORTS_TO, [(top, x0), (w, x3), (u, x3)],
                                    owned=relations.owned_by(db))
        graph_db.commit()
        db.commit()
    assert [(r.index, r.field) for r in refused] == [(0, "to_id"), (1, "to_id")]
    assert "cannot be checked" in refused[0].reason and "at most 10,000" in refused[1].reason
    with plane.provider.management() as graph_db:
        assert graph_queries.targets(graph_db, org.id, REPORTS_TO, [top, w, u]) == {u: x3}
