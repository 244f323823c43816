"""HTML forms of the identity context: sign in, change password, accept an invitation.

The limits mirror the JSON API's bodies (web.identity.api) so both refuse the same input.
"""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, Length, Optional, Regexp

from web.api import SLUG
from web.forms import NO_CONTROL, strip


class SignInForm(FlaskForm):
    """Email and password, and the tenant to act in (only needed by a member of several)."""

    email = EmailField("Email", filters=[strip], validators=[DataRequired(), Email()])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=128)])
    tenant = StringField("Organisation (slug, if you belong to several)", filters=[strip],
                         validators=[Optional(), Regexp(SLUG, message="3-63 lower-case letters, "
                                                                      "digits and dashes")])


class PasswordForm(FlaskForm):
    """The current password and the new one."""

    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=128)])
    new_password = PasswordField("New password", validators=[DataRequired(), Length(min=8, max=128)])


class AcceptInvitationForm(FlaskForm):
    """A new account's name and password, or an existing account's password."""

    name = StringField("Your name", filters=[strip],
                       validators=[Optional(), Length(max=200), NO_CONTROL])
    password = PasswordField("Password", validators=[DataRequired(), Length(min=8, max=128)])

