"""The depth caps of the org unit tree (``MAX_UNIT_DEPTH`` levels) and of the reporting
graph (``MAX_DEPTH`` edges), through the API: every walk reads that deep and no deeper, so
a write that would make a chain deeper is refused, and so is a write whose cycle check
meets a chain already past the cap (made before the cap was held; written here straight
into the tables with one INSERT ... SELECT): the walk cannot see past it, and before the
fix such a write closed a loop."""
from __future__ import annotations

import uuid
from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy import select, text

from domain.employment.models import OrgUnit
from domain.employment.queries import MAX_UNIT_DEPTH
from tests.integration.employment.conftest import API, Org, Plane
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
