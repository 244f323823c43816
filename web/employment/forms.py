"""HTML forms of the employment context: an employee, a job type, an org unit, an import.

Values are checked again by the domain (domain.employment.values), as for the JSON API
and import files, so every way in refuses the same input with the same reason.
"""
from __future__ import annotations

import uuid
from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import DateField, EmailField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Email, Length, Optional

from domain.employment.queries import JobTypeView, OrgUnitView
from domain.employment.services import EmployeeFields
from domain.employment.values import STATUSES
from web.forms import NO_CONTROL, strip


def optional_uuid(value: Any) -> uuid.UUID | None:
    """A select's value as a UUID ("" for none); ValueError (a field error) for anything else."""
    if value is None or value == "" or isinstance(value, uuid.UUID):
        return value or None
    return uuid.UUID(str(value))


def unit_choices(units: list[OrgUnitView], blank: str) -> list[SelectChoice]:
    """Org units indented by depth, after a blank choice."""
    return [SelectChoice("", blank)] + [SelectChoice(str(u.id), "\u2003" * u.depth + u.name) for u in units]


class EmployeeForm(FlaskForm):
    """An employee (``set_choices`` fills in the tenant's job types and units)."""

    name = StringField("Name", filters=[strip], validators=[DataRequired(), Length(max=200), NO_CONTROL])
    work_email = EmailField("Work email", filters=[strip],
                            validators=[DataRequired(), Email(), Length(max=320)])
    job_type_id = SelectField("Job type", coerce=optional_uuid, validate_choice=False)
    org_unit_id = SelectField("Org unit", coerce=optional_uuid, validate_choice=False)
    start_date = DateField("Start date", validators=[Optional()])
    end_date = DateField("End date", validators=[Optional()])
    status = SelectField("Status", choices=[SelectChoice(s, s.replace("_", " ")) for s in STATUSES])
    manager_email = EmailField("Reports to (their work email)", filters=[strip],
                               validators=[Optional(), Email(), Length(max=320)])

    def set_choices(self, job_types: list[JobTypeView], units: list[OrgUnitView]) -> None:
        """Offer the tenant's job types and org units."""
        self.job_type_id.choices = [SelectChoice("", "none")] + [SelectChoice(str(j.id), j.name)
                                                                 for j in job_types]
        self.org_unit_id.choices = unit_choices(units, "none")

    def fields(self) -> EmployeeFields:
        """What the domain takes (a blank manager: the employee reports to nobody)."""
        return EmployeeFields(name=self.name.data or "", work_email=self.work_email.data or "",
                              job_type_id=self.job_type_id.data, org_unit_id=self.org_unit_id.data,
                              start_date=self.start_date.data, end_date=self.end_date.data,
                              status=self.status.data or "", manager_email=self.manager_email.data or "")


class JobTypeForm(FlaskForm):
    """A job type's name."""

    name = StringField("Name", filters=[strip], validators=[DataRequired(), Length(max=120), NO_CONTROL])


class OrgUnitForm(FlaskForm):
    """An org unit's name and parent (``set_choices`` fills in the tenant's units)."""

    name = StringField("Name", filters=[strip], validators=[DataRequired(), Length(max=200), NO_CONTROL])
    parent_id = SelectField("Part of", coerce=optional_uuid, validate_choice=False)

    def set_choices(self, units: list[OrgUnitView]) -> None:
        """Offer the tenant's units as parents."""
        self.parent_id.choices = unit_choices(units, "(top level)")


class ImportForm(FlaskForm):
    """A CSV file of employees."""

    file = FileField("CSV file", validators=[FileRequired(message="choose a CSV file")])
