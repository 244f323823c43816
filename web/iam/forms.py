"""HTML forms of the IAM context: a member's roles, an invitation, a custom role.

Role names and permissions are checked by the domain (domain.iam.services), as for the
JSON API, so both refuse the same input with the same reason.
"""
from __future__ import annotations

from wtforms import EmailField, SelectChoice, SelectField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Email, Length
from wtforms.widgets import CheckboxInput, ListWidget

from domain.iam.services import PERMISSIONS
from web.forms import NO_CONTROL, PageForm, no_control_in_any, strip
from web.i18n import _l, gettext


class CheckboxesField(SelectMultipleField):
    """Several choices as a list of checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class MemberRolesForm(PageForm):
    """The roles a member should hold (replaces the current ones)."""

    roles = CheckboxesField(_l("Roles"), validate_choice=False, validators=[no_control_in_any])


class InviteForm(PageForm):
    """Whom to invite, with which role (``set_roles`` fills in the tenant's roles)."""

    email = EmailField(_l("Email"), filters=[strip], validators=[DataRequired(), Email()])
    role = SelectField(_l("Role"), validate_choice=False, validators=[DataRequired(), NO_CONTROL])

    def set_roles(self, names: list[str]) -> None:
        """Offer the tenant's roles (and a blank first choice)."""
        self.role.choices = [SelectChoice("", gettext("choose a role"))] + [SelectChoice(n) for n in names]


class RoleForm(PageForm):
    """A custom role: a name and permissions from the vocabulary."""

    name = StringField(_l("Name"), filters=[strip], validators=[DataRequired(), Length(max=60)])
    permissions = CheckboxesField(_l("Permissions"), validate_choice=False,
                                  choices=[SelectChoice(p) for p in sorted(PERMISSIONS)])
