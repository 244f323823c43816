"""The employment pages in the page's language: a browser asking for German gets every page
(employees, the employee form, job types and org units, an org unit's form, its org chart,
the imports and one import) in German, with WTForms' field errors, the forms' own messages
and the views' notices in German too; a browser asking for no language gets English; and a
user's saved choice wins over the browser's."""
from __future__ import annotations

import io
import re
import uuid
from dataclasses import dataclass
from html import unescape
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.integration.employment.conftest import API, Org, Plane
from tests.support import pages
from tests.support.tenants import page_csrf

GERMAN = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}
ENGLISH = {"Accept-Language": "en"}
NO_LANGUAGE: dict[str, str] = {}


@dataclass(frozen=True)
class Things:
    """What the module's pages show: a unit, a job type and an employee in that unit."""

    unit_id: str
    unit_name: str
    employee_id: str
    email: str


@pytest.fixture(scope="module")
def org(make_org) -> Org:  # type: ignore[no-untyped-def]
    """The module's organisation."""
    return make_org()


@pytest.fixture(scope="module")
def things(plane: Plane, org: Org) -> Things:
    """A unit, a job type and an employee, made through the API."""
    api, tag = plane.client(), uuid.uuid4().hex[:6]
    unit = api.post(f"{API}/org-units", json={"name": f"Sprachen {tag}"}, headers=org.auth())
    job = api.post(f"{API}/job-types", json={"name": f"Dolmetscher {tag}"}, headers=org.auth())
    email = f"lang-{tag}@example.com"
    person = api.post(f"{API}/employees", headers=org.auth(), json={
        "name": "Lang Person", "work_email": email, "org_unit_id": unit.json["id"],
        "job_type_id": job.json["id"]})
    assert (unit.status_code, job.status_code, person.status_code) == (201, 201, 201)
    return Things(unit.json["id"], unit.json["name"], person.json["id"], email)


def _browser(plane: Plane, org: Org, role: str) -> FlaskClient:
    account = org.tenant.member(role)
    return pages.signed_in_browser(plane.app, pages.Member(account.email, account.user_id, org.id,
                                                           org.tenant.slug))


@pytest.fixture(scope="module")
def browser(plane: Plane, org: Org) -> FlaskClient:
    """The HR manager's browser, signed in (each request says which language it asks for)."""
    return _browser(plane, org, "hr_manager")


def _post(browser: FlaskClient, path: str, data: dict[str, Any], headers: dict[str, str],
          token_from: str) -> TestResponse:
    return browser.post(path, data={**data, "csrf_token": page_csrf(browser, token_from)}, headers=headers)


def _text(response: TestResponse) -> str:
    return unescape(response.get_data(as_text=True))


@pytest.fixture(scope="module")
def import_url(browser: FlaskClient) -> str:
    """An import uploaded through the page (by a German browser)."""
    data = f"name,work_email\nImport Person,imp-{uuid.uuid4().hex[:6]}@example.com\n".encode()
    response = _post(browser, "/employment/imports", {"file": (io.BytesIO(data), "sprache.csv")}, GERMAN,
                     "/employment/imports")
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return response.headers["Location"]


def _pages(things: Things, import_url: str) -> list[tuple[str, list[str], list[str]]]:
    """Every employment page: its path, what it shows in German, what it shows in English."""
    unit, employee = things.unit_id, things.employee_id
    return [
        (f"/employment/employees?q={things.email}",
         ["<h1>Mitarbeiter</h1>", ">Suchen</button>", ">Einen Mitarbeiter hinzufügen</a>",
          f"1 Mitarbeiter passend zu „{things.email}“", "<th>Geschäftliche E-Mail</th>", "<td>aktiv</td>",
          'aria-label="Personal"', ">Stellenarten und Organisationseinheiten</a>"],
         ["<h1>Employees</h1>", ">Search</button>", ">Add an employee</a>",
          f"1 employee matching “{things.email}”", "<th>Work email</th>", "<td>active</td>"]),
        ("/employment/employees/new",
         ["<title>Neuer Mitarbeiter</title>", "<h1>Neuer Mitarbeiter</h1>",
          ">Mitarbeiter hinzufügen</button>", ">Berichtet an (geschäftliche E-Mail der Person)</label>",
          ">beurlaubt</option>", ">keine</option>"],
         ["<h1>New employee</h1>", ">Add employee</button>", ">Reports to (their work email)</label>",
          ">on leave</option>", ">none</option>"]),
        (f"/employment/employees/{employee}",
         ["<h1>Lang Person</h1>", ">Speichern</button>", "<h2>Löschen</h2>",
          ">Diesen Mitarbeiter löschen</button>", ">Eintrittsdatum</label>", ">Stellenart</label>"],
         ["<h1>Lang Person</h1>", ">Save</button>", "<h2>Delete</h2>", ">Delete this employee</button>",
          ">Start date</label>", ">Job type</label>"]),
        ("/employment/structure",
         ["<title>Stellenarten und Organisationseinheiten</title>", "<h1>Organisationseinheiten</h1>",
          "<h1>Stellenarten</h1>", ">Organigramm</a>", ">Bearbeiten</a>", ">Löschen</button>",
          "<h2>Eine Stellenart hinzufügen</h2>", ">Organisationseinheit hinzufügen</button>",
          ">Teil von</label>", ">(oberste Ebene)</option>"],
         ["<h1>Org units</h1>", "<h1>Job types</h1>", ">Org chart</a>", ">Edit</a>",
          "<h2>Add a job type</h2>", ">Add org unit</button>", ">Part of</label>", ">(top level)</option>"]),
        (f"/employment/org-units/{unit}",
         [f"<h1>{things.unit_name}</h1>", ">Teil von</label>", ">Speichern</button>"],
         [f"<h1>{things.unit_name}</h1>", ">Part of</label>", ">Save</button>"]),
        (f"/employment/org-units/{unit}/chart",
         [f"<h1>Organigramm: {things.unit_name}</h1>", f'aria-label="Berichtslinien von {things.unit_name}"',
          "1 Person, Untereinheiten eingeschlossen (<a href=", ">nur diese Einheit</a>).</p>"],
         [f"<h1>Org chart: {things.unit_name}</h1>", f'aria-label="Reporting tree of {things.unit_name}"',
          "1 person, sub-units included (<a href=", ">this unit only</a>).</p>"]),
        (f"/employment/org-units/{unit}/chart?sub_units=0",
         ["1 Person nur in dieser Einheit (<a href=", ">mit ihren Untereinheiten</a>).</p>"],
         ["1 person in this unit only (<a href=", ">with its sub-units</a>).</p>"]),
        ("/employment/imports",
         ["<h1>Mitarbeiter importieren</h1>", ">Importieren</button>", "<h2>Letzte Importe</h2>",
          "<code>name</code> und <code>work_email</code> sind Pflichtangaben", ">CSV-Datei</label>",
          ">sprache.csv</a>", "<th>Mit Problemen</th>"],
         ["<h1>Import employees</h1>", ">Import</button>", "<h2>Latest imports</h2>",
          "<code>name</code> and <code>work_email</code> are required", ">CSV file</label>",
          ">sprache.csv</a>", "<th>With problems</th>"]),
        (import_url,
         ["<h1>Import von sprache.csv</h1>", "<dt>Zeilen</dt>", "<dt>Zeilen mit Problemen</dt>",
          "<dt>Bestehende Berichtslinien</dt>"],
         ["<h1>Import of sprache.csv</h1>", "<dt>Rows</dt>", "<dt>Rows with problems</dt>",
          "<dt>Reporting lines in place</dt>"]),
    ]


def test_every_page_follows_the_browsers_language(browser: FlaskClient, things: Things,
                                                  import_url: str) -> None:
    for path, german, english in _pages(things, import_url):
        in_german = browser.get(path, headers=GERMAN)
        assert in_german.status_code == 200, (path, in_german.status_code)
        text = in_german.get_data(as_text=True)
        assert '<html lang="de">' in text, path
        assert [shown for shown in german if shown not in text] == [], path
        plain = browser.get(path, headers=NO_LANGUAGE)
        assert plain.status_code == 200, (path, plain.status_code)
        text = plain.get_data(as_text=True)
        assert '<html lang="en">' in text, path
        assert [shown for shown in english if shown not in text] == [], path
        assert [shown for shown in german if shown not in english and shown in text] == [], path


def test_the_import_page_names_its_status_in_german(browser: FlaskClient, import_url: str) -> None:
    status = re.search(r'<dd id="status">([^<]*)</dd>', browser.get(import_url, headers=GERMAN)
                       .get_data(as_text=True))
    assert status is not None
    # Whether a worker took it up yet depends on the suite's other modules; each is German.
    assert re.fullmatch(r"wartend \(Mitarbeiter; diese Seite aktualisiert sich selbst\)|"
                        r"läuft \((Mitarbeiter|Vorgesetzte); diese Seite aktualisiert sich selbst\)|"
                        r"abgeschlossen", unescape(status.group(1))), status.group(1)


def test_the_import_page_names_its_status_in_english(browser: FlaskClient, import_url: str) -> None:
    page = _text(browser.get(import_url, headers=NO_LANGUAGE))
    status = re.search(r'<dd id="status">([^<]*)</dd>', page)
    assert status is not None
    assert re.fullmatch(r"pending \(employees; this page refreshes itself\)|"
                        r"running \((employees|managers); this page refreshes itself\)|"
                        r"completed", status.group(1)), status.group(1)
    assert "Awaiting_upload" not in page and "awaiting_upload" not in page


def test_form_errors_and_notices_are_german_for_a_german_browser(browser: FlaskClient) -> None:
    blank = {"name": "", "work_email": "nope", "status": "active", "job_type_id": "", "org_unit_id": "",
             "start_date": "", "end_date": "", "manager_email": ""}
    refused = _post(browser, "/employment/employees", blank, GERMAN, "/employment/employees/new")
    assert refused.status_code == 422 and '<html lang="de">' in refused.get_data(as_text=True)
    assert pages.errors_by_field(refused) == {"name": ["Dieses Feld wird benötigt."],
                                        "work_email": ["Ungültige E-Mail-Adresse."]}
    in_english = _post(browser, "/employment/employees", blank, NO_LANGUAGE, "/employment/employees/new")
    assert in_english.status_code == 422
    assert pages.errors_by_field(in_english) == {"name": ["This field is required."],
                                           "work_email": ["Invalid email address."]}

    no_file = _post(browser, "/employment/imports", {}, GERMAN, "/employment/imports")
    assert no_file.status_code == 422
    assert pages.errors_by_field(no_file) == {"file": ["Wählen Sie eine CSV-Datei"]}
    unit = _post(browser, "/employment/org-units", {"name": "", "parent_id": ""}, GERMAN,
                 "/employment/structure")
    assert unit.status_code == 422 and pages.errors_by_field(unit) == {"name": ["Dieses Feld wird benötigt."]}
    control = _post(browser, "/employment/org-units", {"name": "Lager\x07", "parent_id": ""}, GERMAN,
                    "/employment/structure")
    assert control.status_code == 422
    assert pages.errors_by_field(control) == {"name": ["darf keine Steuerzeichen enthalten"]}

    job = f"Lektor {uuid.uuid4().hex[:6]}"
    added = _post(browser, "/employment/job-types", {"name": job}, GERMAN, "/employment/structure")
    assert added.status_code == 303
    shown = browser.get(added.headers["Location"], headers=GERMAN)
    assert f'<p class="notice" role="status">Stellenart {job} hinzugefügt.</p>' in _text(shown)


def test_a_users_saved_choice_wins_over_the_browser(plane: Plane, org: Org) -> None:
    reader = _browser(plane, org, "employee")
    english = reader.get("/employment/structure", headers=ENGLISH).get_data(as_text=True)
    assert '<html lang="en">' in english and "<h1>Org units</h1>" in english
    chosen = plane.client().put("/api/v1/translations/locale", json={"locale": "de"},
                                headers=org.auth("employee"))
    assert chosen.status_code == 200 and chosen.json["effective"] == "de"
    german = reader.get("/employment/structure", headers=ENGLISH).get_data(as_text=True)
    assert '<html lang="de">' in german and "<h1>Organisationseinheiten</h1>" in german
    assert "<h1>Stellenarten</h1>" in german and 'id="create-org-unit"' not in german  # a reader's page
