"""What every HTML form uses: the base form in the page's language, trimming, refusing
control characters, and showing a domain error next to the field it names."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from flask_wtf import FlaskForm
from wtforms import Field, Form
from wtforms.i18n import get_translations
from wtforms.validators import Regexp, ValidationError

from domain.errors import DomainError
from web.i18n import _l, current_locale

# Text a person typed: no NUL or other control characters (PostgreSQL refuses NUL in text).
NO_CONTROL = Regexp(r"^[^\x00-\x1f\x7f]*\Z", message=_l("must not contain control characters"))


@lru_cache(maxsize=16)
def _wtforms_messages(locale: str) -> Any:
    return get_translations([locale])


class PageForm(FlaskForm):
    """The base of every page's form. Labels are ``_l`` strings (translated when rendered);
    WTForms' own messages ("This field is required.") come in the page's language from the
    catalogues WTForms ships."""

    class Meta:
        def get_translations(self, form: Form) -> Any:
            return _wtforms_messages(current_locale())


def strip(value: Any) -> Any:
    """A field filter: surrounding whitespace off a string."""
    return value.strip() if isinstance(value, str) else value


def no_control_in_any(form: Form, field: Field) -> None:
    """NO_CONTROL for a field holding several strings (a multiple choice)."""
    if any(NO_CONTROL.regex.search(value) is None for value in field.data or []):
        raise ValidationError(NO_CONTROL.message)


def place_error(form: FlaskForm, error: DomainError, fallback: Field,
                aliases: dict[str, str] | None = None) -> None:
    """Show a domain error next to the field it names (``aliases`` maps the domain's field
    names to the form's); a field the form does not have goes beside ``fallback``."""
    name = (aliases or {}).get(error.field or "", error.field or "")
    field = form._fields.get(name) or fallback
    field.errors = [*field.errors, error.reason]
