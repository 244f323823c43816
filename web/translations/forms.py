"""HTML forms of the translations context: a tenant override and a user's language.

Keys, locales and texts are checked by the domain (domain.translations.services), as for
the JSON API, so both refuse the same input with the same reason.
"""
from __future__ import annotations

from wtforms import SelectField, TextAreaField
from wtforms.validators import DataRequired, Length

from web.forms import PageForm
from web.i18n import _l


class OverrideForm(PageForm):
    """The tenant's own text for one product string in one locale."""

    locale = SelectField(_l("Language"), validate_choice=False, validators=[DataRequired()])
    key = SelectField(_l("Product string"), validate_choice=False, validators=[DataRequired()])
    text = TextAreaField(_l("Your text"), validators=[DataRequired(), Length(max=2000)])


class LocaleForm(PageForm):
    """The language of my pages and emails (empty: follow the browser)."""

    locale = SelectField(_l("Language"), validate_choice=False)


class DeleteForm(PageForm):
    """A button that removes one override (its CSRF token only)."""
