"""HTML forms of the employment context: an employee, a job type, an org unit, an import.

Values are checked again by the domain (domain.employment.values), as for the JSON API
and import files, so every way in refuses the same input with the same reason.
"""
from __future__ import annotations

from flask_wtf.file import FileField, FileRequired
from wtforms import DateField, EmailField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Email, Length, Optional

from domain.employment.queries import STATUS_LABELS, JobTypeView, OrgUnitView
from domain.employment.services import EmployeeFields
from domain.employment.values import STATUSES
from web.forms import NO_CONTROL, PageForm, optional_uuid, strip
from web.i18n import _l, gettext


def unit_choices(units: list[OrgUnitView], blank: str) -> list[SelectChoice]:
    """Org units indented by depth, after a blank choice."""
    return [SelectChoice("", blank)] + [SelectChoice(str(u.id), "\u2003" * u.depth + u.name) for u in units]


class EmployeeForm(PageForm):
    """An employee (``set_choices`` fills in the tenant's job types and units)."""

    name = StringField(_l("Name"), filters=[strip], validators=[DataRequired(), Length(max=200), NO_CONTROL])
    work_email = EmailField(_l("Work email"), filters=[strip],
                            validators=[DataRequired(), Email(), Length(max=320)])
    job_type_id = SelectField(_l("Job type"), coerce=optional_uuid, validate_choice=False)
    org_unit_id = SelectField(_l("Org unit"), coerce=optional_uuid, validate_choice=False)
    start_date = DateField(_l("Start date"), validators=[Optional()])
    end_date = DateField(_l("End date"), validators=[Optional()])
    status = SelectField(_l("Status"), choices=[SelectChoice(s, _l(STATUS_LABELS[s])) for s in STATUSES])
    manager_email = EmailField(_l("Reports to (their work email)"), filters=[strip],
                               validators=[Optional(), Email(), Length(max=320)])

    def set_choices(self, job_types: list[JobTypeView], units: list[OrgUnitView]) -> None:
        """Offer the tenant's job types and org units."""
        self.job_type_id.choices = [SelectChoice("", gettext("none"))] + [SelectChoice(str(j.id), j.name)
                                                                 for j in job_types]
        self.org_unit_id.choices = unit_choices(units, gettext("none"))

    def fields(self) -> EmployeeFields:
        """What the domain takes (a blank manager: the employee reports to nobody)."""
        return EmployeeFields(name=self.name.data or "", work_email=self.work_email.data or "",
                              job_type_id=self.job_type_id.data, org_unit_id=self.org_unit_id.data,
                              start_date=self.start_date.data, end_date=self.end_date.data,
                              status=self.status.data or "", manager_email=self.manager_email.data or "")


class JobTypeForm(PageForm):
    """A job type's name."""

    name = StringField(_l("Name"), filters=[strip], validators=[DataRequired(), Length(max=120), NO_CONTROL])


class OrgUnitForm(PageForm):
    """An org unit's name and parent (``set_choices`` fills in the tenant's units)."""

    name = StringField(_l("Name"), filters=[strip], validators=[DataRequired(), Length(max=200), NO_CONTROL])
    parent_id = SelectField(_l("Part of"), coerce=optional_uuid, validate_choice=False)

    def set_choices(self, units: list[OrgUnitView]) -> None:
        """Offer the tenant's units as parents."""
        self.parent_id.choices = unit_choices(units, gettext("(top level)"))


class ImportForm(PageForm):
    """A CSV file of employees."""

    file = FileField(_l("CSV file"), validators=[FileRequired(message=_l("choose a CSV file"))])
