"""Employees in Chromium: an HR manager signs in, adds an employee to a unit through the form
(reporting to the unit's head), sees a bad value refused next to its field, and finds the
new employee on the unit's org chart, under their manager."""
from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Page, Response

from domain.db.provider import DataProvider
from domain.employment import services, structure
from domain.employment.services import EmployeeFields
from tests.browser.conftest import element_after
from tests.support import tenants

pytestmark = pytest.mark.e2e
PASSWORD = "hr manager password 0123"


def submit(page: Page, form: str) -> Response:
    """Press the form's button; the answer to its POST."""
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click(f'{form} button[type="submit"]')
    page.wait_for_load_state()
    return posted.value


def test_an_employee_added_through_the_form_is_on_the_org_chart(page: Page, provider: DataProvider) -> None:
    org = tenants.create_tenant(provider, ("hr_manager",), prefix="browser-hr", password=PASSWORD)
    manager = org.member("hr_manager")
    boss_email = f"boss-{uuid.uuid4().hex[:6]}@example.com"
    with provider.tenant(org.id) as db, provider.management() as graph_db:
        unit = structure.create_org_unit(db, org.id, "Research", None)
        boss = services.create_employee(db, graph_db, org.id, EmployeeFields("Barbara Boss", boss_email,
                                                                             org_unit_id=unit.id))
        db.commit()

    page.goto("/identity/sign-in")
    page.fill('[name="email"]', manager.email)
    page.fill('[name="password"]', PASSWORD)
    page.fill('[name="tenant"]', org.slug)
    assert submit(page, "form#sign-in").status == 303

    page.goto("/employment/employees/new")
    email = f"ada-{uuid.uuid4().hex[:6]}@example.com"
    page.fill('[name="name"]', "Ada Lovelace")
    page.fill('[name="work_email"]', email)
    page.select_option('[name="org_unit_id"]', label="Research")
    page.fill('[name="start_date"]', "2024-05-01")
    page.fill('[name="manager_email"]', "Barbara Boss")  # a name, not an email
    assert submit(page, "form#employee").status == 422
    assert element_after(page, "manager_email") == {"cls": "field-error", "field": "manager_email",
                                                    "text": "Invalid email address."}
    assert page.input_value('[name="name"]') == "Ada Lovelace"  # kept, to correct

    page.fill('[name="manager_email"]', boss_email)
    page.fill('[name="end_date"]', "2024-04-01")  # before the start: the domain refuses it
    assert submit(page, "form#employee").status == 422
    assert element_after(page, "end_date") == {"cls": "field-error", "field": "end_date",
                                               "text": "must not be before the start date"}

    page.fill('[name="end_date"]', "")
    assert submit(page, "form#employee").status == 303
    assert page.locator("#employees td", has_text=email).count() == 1
    page.click("#employees a:has-text('Research')")  # the unit links to its chart
    page.wait_for_load_state()
    assert page.inner_text("h1") == "Org chart: Research"
    ada = page.locator("#org-chart g.person", has_text="Ada Lovelace")
    assert ada.count() == 1
    assert ada.locator("title").text_content() == f"Ada Lovelace <{email}>"
    assert ada.get_attribute("data-manager") == str(boss.id)  # drawn under Barbara
    assert page.locator(f'#org-chart g.person[data-id="{boss.id}"]').count() == 1
    assert page.locator("#org-chart path").count() == 1
    assert page.inner_text("#chart-summary").startswith("2 people")
