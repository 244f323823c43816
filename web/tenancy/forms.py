"""HTML forms of the tenancy context."""
from __future__ import annotations

from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, Length, Regexp

from web.api import SLUG
from web.forms import NO_CONTROL, PageForm
from web.i18n import _l


class SignupForm(PageForm):
    """Sign up a trial tenant."""

    organisation_name = StringField(_l("Organisation"),
                                    validators=[DataRequired(), Length(max=200), NO_CONTROL])
    slug = StringField(_l("Address (slug)"), validators=[
        DataRequired(), Regexp(SLUG, message=_l("3-63 lower-case letters, digits and dashes"))])
    admin_name = StringField(_l("Your name"), validators=[DataRequired(), Length(max=200), NO_CONTROL])
    email = EmailField(_l("Email"), validators=[DataRequired(), Email()])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(min=10, max=128)])
