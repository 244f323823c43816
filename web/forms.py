"""What every HTML form uses: the base form in the page's language, trimming, refusing
control characters, and showing a domain error next to the field it names."""
from __future__ import annotations

import uuid
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


class _PageMessages:
    """WTForms' own messages in the page's language, chosen when a message is made: WTForms
    asks for its translations as it builds a form, and the page's language may need the
    database (the user's choice), which a form that never shows a message should not read."""

    def gettext(self, string: str) -> str:
        return str(_wtforms_messages(current_locale()).gettext(string))

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return str(_wtforms_messages(current_locale()).ngettext(singular, plural, n))


_PAGE_MESSAGES = _PageMessages()


class PageForm(FlaskForm):
    """The base of every page's form. Labels are ``_l`` strings (translated when rendered);
    WTForms' own messages ("This field is required.") come in the page's language from the
    catalogues WTForms ships."""

    class Meta:
        def get_translations(self, form: Form) -> Any:
            return _PAGE_MESSAGES


def as_uuid(value: Any) -> uuid.UUID:
    """A choice's value as a UUID (a form filled from the database already holds one);
    ValueError (a field error) for anything else."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def optional_uuid(value: Any) -> uuid.UUID | None:
    """A select's value as a UUID, None for "" (no choice); ValueError for anything else."""
    return None if value is None or value == "" else as_uuid(value)


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
