"""HTML forms of the translations context: a tenant override and a user's language.

Keys, locales and texts are checked by the domain (domain.translations.services), as for
the JSON API, so both refuse the same input with the same reason.
"""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectField, TextAreaField
from wtforms.validators import DataRequired, Length


class OverrideForm(FlaskForm):
    """The tenant's own text for one product string in one locale."""

    locale = SelectField("Language", validate_choice=False, validators=[DataRequired()])
    key = SelectField("Product string", validate_choice=False, validators=[DataRequired()])
    text = TextAreaField("Your text", validators=[DataRequired(), Length(max=2000)])


class LocaleForm(FlaskForm):
    """The language of my pages and emails (empty: follow the browser)."""

    locale = SelectField("Language", validate_choice=False)


class DeleteForm(FlaskForm):
    """A button that removes one override (its CSRF token only)."""
