"""Deleting an employee removes their edges from the relation graph, through the
``EmployeeDeleted`` event and a real ``employment`` worker; the beat job reports any GUID
left dangling (made here by writing an edge the way no service would)."""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import insert

from config.celery import BEAT_JOBS
from domain.graph import queries as graph_queries
from domain.graph.models import Edge
from tests.integration.employment.conftest import API, Org, Plane, edge_count, make_tree
from tests.support import processes
from tests.support.waiting import wait_for
from workers.publisher import web_publisher


@pytest.fixture(scope="module")
def worker(start_worker: Callable[..., processes.Process],
           relay: processes.Process) -> Iterator[processes.Process]:
    """The module's ``employment`` worker."""
    process = start_worker("employment-events")
    yield process
    process.stop()


def test_deleting_an_employee_removes_their_edges(plane: Plane, make_org: Callable[[], Org],
                                                  worker: processes.Process) -> None:
    org = make_org()
    tree = make_tree(plane.provider, org.id, 30, seed=2)
    middle = next(p for p in tree.people[1:] if tree.reports[p])
    mentee = tree.people[-1]
    api = plane.client()
    mentor = {"relation": "mentor_of", "from_id": str(middle), "to_id": str(mentee)}
    assert api.post(f"{API}/relations", json=mentor, headers=org.auth()).status_code == 201
    touching = 1 + len(tree.reports[middle]) + 1  # their manager, their reports, the mentee
    before = edge_count(plane.provider, org.id)
    with plane.provider.management() as graph_db:
        assert len(graph_queries.edges_of(graph_db, org.id, middle)) == touching

    assert api.delete(f"{API}/employees/{middle}", headers=org.auth()).status_code == 204

    def gone() -> bool:
        with plane.provider.management() as graph_db:
            return not graph_queries.edges_of(graph_db, org.id, middle)

    wait_for(gone, timeout=30, message="the deleted employee's edges to be removed")
    assert edge_count(plane.provider, org.id) == before - touching
    for report in tree.reports[middle]:  # their reports now report to nobody
        assert api.get(f"{API}/employees/{report}/chain", headers=org.auth()).json["items"] == []


def test_the_beat_job_reports_dangling_guids(plane: Plane, make_org: Callable[[], Org],
                                             worker: processes.Process) -> None:
    assert BEAT_JOBS["dangling-graph-guids"][0] == "tasks.employment.report_dangling_edges"
    org = make_org()
    tree = make_tree(plane.provider, org.id, 5, seed=4)
    ghost = uuid.uuid4()
    with plane.provider.management() as graph_db:  # no service writes this: the GUID is nobody's
        graph_db.execute(insert(Edge).values(tenant_id=org.id, relation="mentor_of", from_id=ghost,
                                             to_id=tree.top))
        graph_db.commit()
    celery = web_publisher(plane.settings.broker_url, plane.settings.result_backend)
    try:
        # The task beat sends, run by the real worker (beat itself sends it once an hour).
        sent = celery.send_task("tasks.employment.report_dangling_edges", queue="employment")
        report = sent.get(timeout=60)
    finally:
        celery.close()
    assert report["dangling"][str(org.id)] == {"count": 1, "tenant_gone": False, "sample": [str(ghost)]}
    assert report["tenants_checked"] >= 1
    assert f"dangling GUID(s) in tenant {org.id}" in worker.log()
