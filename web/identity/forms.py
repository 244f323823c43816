"""HTML forms of the identity context: sign in, change or reset a password, accept an invitation.

The limits mirror the JSON API's bodies (web.identity.api) so both refuse the same input.
"""
from __future__ import annotations

from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length, Optional, Regexp

from web.api import SLUG
from web.forms import NO_CONTROL, PageForm, strip
from web.i18n import _l


class SignInForm(PageForm):
    """Email and password, and the tenant to act in (only needed by a member of several)."""

    email = EmailField(_l("Email"), filters=[strip], validators=[DataRequired(), Email()])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=128)])
    tenant = StringField(_l("Organisation (slug, if you belong to several)"), filters=[strip],
                         validators=[Optional(), Regexp(SLUG, message=_l("3-63 lower-case letters, "
                                                                         "digits and dashes"))])


class PasswordForm(PageForm):
    """The current password and the new one."""

    current_password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=128)])
    new_password = PasswordField(_l("New password"), validators=[DataRequired(), Length(min=8, max=128)])


class AcceptInvitationForm(PageForm):
    """A new account's name and password, or an existing account's password."""

    name = StringField(_l("Your name"), filters=[strip],
                       validators=[Optional(), Length(max=200), NO_CONTROL])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(min=8, max=128)])



class PasswordResetLinkForm(PageForm):
    """The address of the account whose password was lost."""

    email = EmailField(_l("Email"), filters=[strip], validators=[DataRequired(), Email(), Length(max=320)])


class PasswordResetForm(PageForm):
    """A new password, typed twice."""

    new_password = PasswordField(_l("New password"), validators=[DataRequired(), Length(min=8, max=128)])
    confirm_password = PasswordField(_l("New password again"), validators=[
        DataRequired(), EqualTo("new_password", message=_l("does not match the new password"))])
