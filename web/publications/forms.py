"""HTML forms of the publications context: a draft, a section, publishing, moving a section.

Values are checked again by the domain (domain.publications.values and .audience), as for
the JSON API, so both ways in refuse the same input with the same reason.
"""
from __future__ import annotations

import re
from datetime import UTC
from typing import Any

from wtforms import (
    BooleanField,
    DateTimeLocalField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import AnyOf, DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from domain.assets.queries import AssetView
from domain.employment.queries import OrgUnitView
from domain.publications.audience import Audience
from domain.publications.services import Draft, SectionFields
from domain.publications.values import MAX_BODY, MAX_TITLE
from web.forms import NO_CONTROL, PageForm, as_uuid, optional_uuid, strip
from web.i18n import _l

_SEPARATORS = re.compile(r"[\s,;]+")
# Where a domain error's field shows on the draft form.
DRAFT_FIELDS = {"audience.kind": "audience_kind", "audience.org_unit_id": "org_unit_id",
                "audience.employee_ids": "people"}


class PublicationForm(PageForm):
    """A draft (``set_choices`` offers the tenant's org units and the author's ready assets)."""

    title = StringField(_l("Title"), filters=[strip],
                        validators=[DataRequired(), Length(max=MAX_TITLE), NO_CONTROL])
    body = TextAreaField(_l("Text (Markdown)"), validators=[Length(max=MAX_BODY)])
    audience_kind = RadioField(_l("Audience"), default="everyone", choices=[
        SelectChoice("everyone", _l("Everyone")), SelectChoice("org_unit", _l("An org unit")),
        SelectChoice("people", _l("These people"))])
    org_unit_id = SelectField(_l("Org unit"), coerce=optional_uuid, validate_choice=False)
    sub_units = BooleanField(_l("and every unit below it"))
    people = TextAreaField(_l("People (work emails, one a line)"), validators=[Length(max=400_000)])
    attachments = SelectMultipleField(_l("Attachments"), coerce=as_uuid, validate_choice=False,
                                      widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())

    def set_choices(self, units: list[OrgUnitView], assets: list[AssetView]) -> None:
        """Offer the tenant's org units and the ready assets the author can see."""
        self.org_unit_id.choices = [SelectChoice("", _l("(choose a unit)"))] + [
            SelectChoice(str(u.id), "\u2003" * u.depth + u.name) for u in units]
        self.attachments.choices = [SelectChoice(str(a.id), a.filename)
                                    for a in assets if a.status == "ready"]

    def draft(self) -> Draft:
        """What the domain takes (only what the chosen kind of audience uses)."""
        kind = self.audience_kind.data or "everyone"
        emails = tuple(e for e in _SEPARATORS.split(self.people.data or "") if e)
        audience = Audience(kind, self.org_unit_id.data if kind == "org_unit" else None,
                            bool(self.sub_units.data) and kind == "org_unit",
                            employee_emails=emails if kind == "people" else ())
        return Draft(self.title.data or "", (self.body.data or "").replace("\r\n", "\n"), audience,
                     tuple(self.attachments.data or ()))


class SectionForm(PageForm):
    """A section: a heading and a Markdown body."""

    heading = StringField(_l("Heading"), filters=[strip],
                          validators=[DataRequired(), Length(max=MAX_TITLE), NO_CONTROL])
    body = TextAreaField(_l("Text (Markdown)"), validators=[Length(max=MAX_BODY)])

    def fields(self) -> SectionFields:
        """What the domain takes."""
        return SectionFields(self.heading.data or "", (self.body.data or "").replace("\r\n", "\n"))


class PublishForm(PageForm):
    """Publish now (no time) or at a time (UTC)."""

    publish_at = DateTimeLocalField(_l("Publish at (UTC; empty: now)"), format="%Y-%m-%dT%H:%M",
                                    validators=[Optional()])

    def when(self) -> Any:
        """The time asked for, in UTC (None: now)."""
        value = self.publish_at.data
        return value.replace(tzinfo=UTC) if value is not None else None


class MoveForm(PageForm):
    """Move a section one place up or down."""

    direction = StringField(_l("Direction"), validators=[DataRequired(), AnyOf(["up", "down"])])

    @property
    def offset(self) -> int:
        """-1 for up, +1 for down."""
        return -1 if self.direction.data == "up" else 1
