"""The publications and assets pages in the page's language: German for a browser asking for
it (headings, buttons, labels, statuses, flash messages and WTForms' own field errors),
English for a browser asking for no language, and German for a user who chose it while
their browser asks for English. One plane serves both contexts (the whole web app)."""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug.test import TestResponse, encode_multipart

from tests.integration.publications.conftest import (
    Org,
    Plane,
    add_reader,
    asset,
    draft,
    publish,
    wait_published,
)
from tests.support.pages import errors_by_field
from tests.support.tenants import bearer, page_csrf

pytestmark = pytest.mark.usefixtures("workers")
LOCALE = "/api/v1/translations/locale"
@pytest.fixture(scope="module")
def org(make_org: Callable[..., Org]) -> Org:
    """The module's organisation."""
    return make_org()


def call(plane: Plane, token: str, method: str, path: str, *, language: str | None = None,
         form: dict[str, object] | None = None, **request: object) -> TestResponse:
    """A page request with the member's access cookie (and a CSRF token on POST), from a
    browser asking for ``language`` (None: no Accept-Language at all)."""
    client = plane.client()
    client.set_cookie(plane.app.config["JWT_ACCESS_COOKIE_NAME"], token)
    headers = {"Accept-Language": language} if language else {}
    if method != "GET":
        headers["X-CSRFToken"] = page_csrf(client)
    return client.open(path, method=method, data=form, headers=headers, **request)  # type: ignore[arg-type]


def text_of(response: TestResponse, status: int = 200) -> str:
    """The page's HTML, once its status is checked."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


def test_the_authors_pages_and_their_messages_follow_the_browser(plane: Plane, org: Org) -> None:
    token = org.tokens["hr_manager"]
    handbook = asset(plane, org.id, org.user("hr_manager"), filename="handbook.txt")
    made = draft(plane.client(), org, title="Betriebsausflug", attachments=[str(handbook)],
                 sections=[{"heading": "Wohin", "body": "An den See."}])
    edit = f"/publications/{made['id']}/edit"

    new = text_of(call(plane, token, "GET", "/publications/new", language="de-DE,de;q=0.9,en;q=0.5"))
    assert '<html lang="de">' in new and "<h1>Neue Veröffentlichung</h1>" in new
    assert '<label for="title">Titel</label>' in new and "<legend>Zielgruppe</legend>" in new
    assert ">Diese Personen</label>" in new and ">(Einheit auswählen)</option>" in new
    assert '<button type="submit">Entwurf speichern</button>' in new and ">Für mich</a>" in new
    english = text_of(call(plane, token, "GET", "/publications/new"))
    assert '<html lang="en">' in english and "<h1>New publication</h1>" in english
    assert '<label for="title">Title</label>' in english and ">These people</label>" in english

    refused = call(plane, token, "POST", "/publications", language="de",
                   form={"title": " ", "audience_kind": "everyone"})
    assert (refused.status_code, errors_by_field(refused)) == (422, {"title": ["Dieses Feld wird benötigt."]})
    assert '<html lang="de">' in refused.get_data(as_text=True)
    refused_en = call(plane, token, "POST", "/publications", form={"title": " ", "audience_kind": "everyone"})
    assert refused_en.status_code == 422
    assert errors_by_field(refused_en) == {"title": ["This field is required."]}

    page = text_of(call(plane, token, "GET", edit, language="de"))
    assert "Status: <strong>Entwurf</strong>" in page and "<h2>Abschnitte</h2>" in page
    assert '<button type="submit">Abschnitt speichern</button>' in page
    assert '<button type="submit">Nach oben</button>' in page
    assert "<h3>Einen Abschnitt hinzufügen</h3>" in page
    assert '<label for="publish_at">Veröffentlichen am (UTC; leer: sofort)</label>' in page
    assert '<button type="submit">Diese Veröffentlichung löschen</button>' in page
    assert ">Anhänge</label>" in page and "handbook.txt" in page
    page_en = text_of(call(plane, token, "GET", edit))
    assert "Status: <strong>draft</strong>" in page_en and "<h2>Sections</h2>" in page_en
    assert '<button type="submit">Move up</button>' in page_en

    bad_time = call(plane, token, "POST", f"/publications/{made['id']}/publish", language="de",
                    form={"publish_at": "soon"})
    assert (bad_time.status_code, errors_by_field(bad_time)) == (
        422, {"publish_at": ["Kein gültiges Datum mit Zeit."]})
    added = call(plane, token, "POST", f"/publications/{made['id']}/sections", language="de",
                 form={"heading": "Wann", "body": "Freitag"}, follow_redirects=True)
    assert '<p class="notice" role="status">Abschnitt hinzugefügt.</p>' in text_of(added)
    later = (datetime.now(UTC) + timedelta(days=2)).replace(second=0, microsecond=0)
    scheduled = call(plane, token, "POST", f"/publications/{made['id']}/publish", language="de",
                     form={"publish_at": later.strftime("%Y-%m-%dT%H:%M")}, follow_redirects=True)
    html = text_of(scheduled)
    assert '<p class="notice" role="status">Geplant.</p>' in html
    assert f"Status: <strong>geplant</strong> für {later.strftime('%Y-%m-%d %H:%M UTC')}" in html
    assert '<button type="submit">Zurück zum Entwurf</button>' in html

    manage = text_of(call(plane, token, "GET", "/publications/manage", language="de"))
    assert "<title>Veröffentlichungen verwalten</title>" in manage and "<h1>Veröffentlichungen</h1>" in manage
    assert ("<th>Titel</th><th>Status</th><th>Von</th><th>Wann</th><th>Empfänger</th><th>Gelesen</th>"
            in manage)
    row = re.search(rf'data-publication="{made["id"]}".*?</tr>', manage, re.S)
    assert row and '<td class="status">geplant</td>' in row.group(0)
    manage_en = text_of(call(plane, token, "GET", "/publications/manage"))
    assert "<h1>Publications</h1>" in manage_en and "<th>Recipients</th>" in manage_en
    row = re.search(rf'data-publication="{made["id"]}".*?</tr>', manage_en, re.S)
    assert row and '<td class="status">scheduled</td>' in row.group(0)


def test_the_readers_pages_and_the_published_status_follow_the_browser(plane: Plane, org: Org) -> None:
    _, reader_employee, reader_token = add_reader(plane, org)
    handbook = asset(plane, org.id, org.user("hr_manager"), filename="handbook.txt", content=b"x" * 42)
    made = draft(plane.client(), org, title="Kantine", body="Suppe.", attachments=[str(handbook)],
                 audience={"kind": "people", "employee_ids": [str(reader_employee)]})
    publish(plane.client(), org, made["id"])
    wait_published(plane, org.id, made["id"])

    listed = text_of(call(plane, reader_token, "GET", "/publications", language="de"))
    assert '<html lang="de">' in listed and "<h1>Veröffentlichungen für Sie</h1>" in listed
    assert '<p id="count">1 Veröffentlichung</p>' in listed and "<td>noch nicht</td>" in listed
    assert "<th>Veröffentlicht</th>" in listed
    listed_en = text_of(call(plane, reader_token, "GET", "/publications"))
    assert "<h1>Publications for you</h1>" in listed_en and '<p id="count">1 publication</p>' in listed_en

    opened = text_of(call(plane, reader_token, "GET", f"/publications/{made['id']}", language="de"))
    assert "<h2>Anhänge</h2>" in opened and "handbook.txt</a> (42 Bytes)" in opened
    opened_en = text_of(call(plane, reader_token, "GET", f"/publications/{made['id']}"))
    assert "<h2>Attachments</h2>" in opened_en and "handbook.txt</a> (42 bytes)" in opened_en
    assert "<td>ja</td>" in text_of(call(plane, reader_token, "GET", "/publications", language="de"))

    token = org.tokens["hr_manager"]
    status = re.compile(r'<p id="status" data-status="published">(.*?)</p>', re.S)
    edit = f"/publications/{made['id']}/edit"
    german = status.search(text_of(call(plane, token, "GET", edit, language="de")))
    assert german and "Status: <strong>veröffentlicht</strong> am " in german.group(1)
    assert ('<span id="recipients">1</span> Empfänger (1 mit Konto), '
            '<span id="read-count">1</span> gelesen' in german.group(1))
    english = status.search(text_of(call(plane, token, "GET", edit)))
    assert english and "Status: <strong>published</strong> on " in english.group(1)
    assert ('<span id="recipients">1</span> recipients (1 with an account), '
            '<span id="read-count">1</span> read' in english.group(1))


def test_the_assets_pages_follow_the_browser(plane: Plane, org: Org) -> None:
    token = org.tokens["owner"]  # a tenant admin: sees the usage too
    ready = asset(plane, org.id, org.user("owner"), filename="plan.txt", content=b"y" * 1500)
    busy = asset(plane, org.id, org.user("owner"), status="processing", filename="video.txt")
    waiting = asset(plane, org.id, org.user("owner"), status="awaiting_upload", filename="later.txt")

    listing = text_of(call(plane, token, "GET", "/assets", language="de"))
    assert '<html lang="de">' in listing and "<title>Dateien</title>" in listing
    assert "<h1>Dateien der Organisation</h1>" in listing and "<h2>Eine Datei hochladen</h2>" in listing
    assert '<button type="submit">Hochladen</button>' in listing and "Belegter Speicher: " in listing
    assert "<th>Datei</th><th>Status</th><th>Größe</th><th>Hochgeladen</th>" in listing
    assert re.search(rf'data-asset="{busy}">.*?<td>wird verarbeitet \(', listing, re.S)
    listing_en = text_of(call(plane, token, "GET", "/assets"))
    assert "<h1>Assets of the organisation</h1>" in listing_en and "Storage used: " in listing_en
    assert re.search(rf'data-asset="{busy}">.*?<td>processing \(', listing_en, re.S)
    assert re.search(rf'data-asset="{waiting}">.*?<td>awaiting upload \(', listing_en, re.S)

    page = text_of(call(plane, token, "GET", f"/assets/{ready}", language="de"))
    assert "Bereit." in page and "<th>Größe</th><td>1.500 Bytes</td>" in page
    assert "<h2>Herunterladen</h2>" in page and '<button type="submit">Löschen</button>' in page
    assert ">Alle Dateien</a>" in page
    busy_page = text_of(call(plane, token, "GET", f"/assets/{busy}", language="de"))
    assert "Wird verarbeitet: <progress" in busy_page
    page_en = text_of(call(plane, token, "GET", f"/assets/{ready}"))
    assert "Ready." in page_en and "<th>Size</th><td>1,500 bytes</td>" in page_en
    assert "Processing: <progress" in text_of(call(plane, token, "GET", f"/assets/{busy}"))
    # A code with an underscore reads as its label, not as the code capitalised ("Awaiting_upload").
    waiting_en = text_of(call(plane, token, "GET", f"/assets/{waiting}"))
    assert "Awaiting upload: <progress" in waiting_en and "Awaiting_upload" not in waiting_en
    waiting_de = text_of(call(plane, token, "GET", f"/assets/{waiting}", language="de"))
    assert "Noch nicht hochgeladen: <progress" in waiting_de

    # The streamed upload form's own refusal: a form without a file.
    client = plane.client()
    client.set_cookie(plane.app.config["JWT_ACCESS_COOKIE_NAME"], token)
    boundary, body = encode_multipart({"csrf_token": page_csrf(client)})
    refusals = (("de", "wählen Sie eine Datei zum Hochladen aus"), (None, "choose a file to upload"))
    for language, reason in refusals:
        headers = {"Accept-Language": language} if language else {}
        no_file = client.post("/assets", data=body, content_type=f"multipart/form-data; boundary={boundary}",
                              headers=headers)
        assert (no_file.status_code, errors_by_field(no_file)) == (422, {"file": [reason]})


def test_a_users_saved_choice_wins_over_the_browser(plane: Plane, org: Org) -> None:
    _, _, reader_token = add_reader(plane, org)
    chosen = plane.client().put(LOCALE, headers=bearer(reader_token), json={"locale": "de"})
    assert chosen.status_code == 200 and chosen.json["effective"] == "de"
    page = text_of(call(plane, reader_token, "GET", "/publications", language="en-GB,en;q=0.9"))
    assert '<html lang="de">' in page and "<h1>Veröffentlichungen für Sie</h1>" in page
    assert "<td colspan=\"4\">Noch nichts an Sie gerichtet.</td>" in page
    other = text_of(call(plane, org.tokens["employee"], "GET", "/publications", language="en-GB,en;q=0.9"))
    assert '<html lang="en">' in other and "<h1>Publications for you</h1>" in other
