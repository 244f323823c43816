"""HTML forms of the IAM context: a member's roles, an invitation, a custom role.

Role names and permissions are checked by the domain (domain.iam.services), as for the
JSON API, so both refuse the same input with the same reason.
"""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, SelectChoice, SelectField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Email, Length
from wtforms.widgets import CheckboxInput, ListWidget

from domain.iam.services import PERMISSIONS
from web.forms import NO_CONTROL, no_control_in_any, strip


class CheckboxesField(SelectMultipleField):
    """Several choices as a list of checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class MemberRolesForm(FlaskForm):
    """The roles a member should hold (replaces the current ones)."""

    roles = CheckboxesField("Roles", validate_choice=False, validators=[no_control_in_any])


class InviteForm(FlaskForm):
    """Whom to invite, with which role (``set_roles`` fills in the tenant's roles)."""

    email = EmailField("Email", filters=[strip], validators=[DataRequired(), Email()])
    role = SelectField("Role", validate_choice=False, validators=[DataRequired(), NO_CONTROL])

    def set_roles(self, names: list[str]) -> None:
        """Offer the tenant's roles (and a blank first choice)."""
        self.role.choices = [SelectChoice("", "choose a role")] + [SelectChoice(n) for n in names]


class RoleForm(FlaskForm):
    """A custom role: a name and permissions from the vocabulary."""

    name = StringField("Name", filters=[strip], validators=[DataRequired(), Length(max=60)])
    permissions = CheckboxesField("Permissions", validate_choice=False,
                                  choices=[SelectChoice(p) for p in sorted(PERMISSIONS)])
