"""HTML forms of the tenancy context."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, Length, Regexp

from web.api import SLUG
from web.forms import NO_CONTROL


class SignupForm(FlaskForm):
    """Sign up a trial tenant."""

    organisation_name = StringField("Organisation", validators=[DataRequired(), Length(max=200), NO_CONTROL])
    slug = StringField("Address (slug)", validators=[
        DataRequired(), Regexp(SLUG, message="3-63 lower-case letters, digits and dashes")])
    admin_name = StringField("Your name", validators=[DataRequired(), Length(max=200), NO_CONTROL])
    email = EmailField("Email", validators=[DataRequired(), Email()])
    password = PasswordField("Password", validators=[DataRequired(), Length(min=10, max=128)])
