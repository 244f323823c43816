"""Use cases of the translations context: tenant overrides, users' languages, translators."""
from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import any_, bindparam, delete, select
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from domain.db.base import utcnow
from domain.db.provider import DataProvider
from domain.db.sql import Read, Sql, read_one
from domain.errors import NotFound
from domain.translations.catalogues import Catalogues, has_width, placeholders, plain_conversions
from domain.translations.errors import InvalidTranslation
from domain.translations.models import TranslationOverride, UserLocale
from domain.translations.translator import Translator

log = logging.getLogger(__name__)
MAX_TEXT = 2000
# Text a person typed: newlines and tabs are fine, other control characters are not.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class OverrideView:
    """One tenant override as the API and the admin page show it."""

    id: uuid.UUID
    locale: str
    key: str
    text: str
    updated_at: datetime


@dataclass(frozen=True)
class StringView:
    """One product string in one locale: the catalogue's text and the tenant's override."""

    key: str
    default_text: str
    text: str
    override: OverrideView | None


def _view(row: TranslationOverride) -> OverrideView:
    return OverrideView(row.id, row.locale, row.key, row.text, row.updated_at)


def check_locale(catalogues: Catalogues, locale: str, field: str = "locale") -> str:
    """``locale`` if the product has a catalogue for it; 422 naming ``field`` otherwise."""
    if locale not in catalogues.locales:
        raise InvalidTranslation(f"unknown locale; known: {', '.join(catalogues.locales)}", field=field)
    return locale


def _check_text(catalogues: Catalogues, key: str, text: str) -> str:
    if not catalogues.knows(key):
        raise InvalidTranslation("not a product string (see GET /api/v1/translations/strings)", field="key")
    if not text.strip():
        raise InvalidTranslation("must not be empty (delete the override to use the catalogue's text)",
                                 field="text")
    if len(text) > MAX_TEXT or _CONTROL.search(text):
        raise InvalidTranslation(f"at most {MAX_TEXT} characters, no control characters", field="text")
    allowed = placeholders(key)
    # A text with placeholders is filled in: each % is a bare placeholder or %%. One without
    # is shown as written ("100% sicher"), but never with a width a formatter would honour.
    if (not plain_conversions(text)) if allowed else has_width(text):
        raise InvalidTranslation("a placeholder is written %(name)s, with no flags, width or precision; "
                                 "a % before a number must be written %%", field="text")
    unknown = sorted(placeholders(text) - allowed)
    if unknown:
        known = ", ".join(f"%({name})s" for name in sorted(allowed)) or "none"
        raise InvalidTranslation(f"unknown placeholder %({unknown[0]})s; this string has: {known}",
                                 field="text")
    if allowed:
        try:
            text % dict.fromkeys(allowed, "")
        except (KeyError, ValueError, TypeError):
            raise InvalidTranslation("a lone % must be written %%", field="text") from None
    return text


def set_override(session: Session, catalogues: Catalogues, tenant_id: uuid.UUID, *, locale: str,
                 key: str, text: str, by: uuid.UUID | None) -> OverrideView:
    """Set the tenant's text for ``key`` in ``locale`` (created or replaced)."""
    check_locale(catalogues, locale)
    _check_text(catalogues, key, text)
    now = utcnow()
    row_id = session.scalar(
        insert(TranslationOverride)
        .values(id=uuid.uuid4(), tenant_id=tenant_id, locale=locale, key=key, text=text, updated_by=by,
                updated_at=now)
        .on_conflict_do_update(index_elements=["tenant_id", "locale", "key"],
                               set_={"text": text, "updated_by": by, "updated_at": now})
        .returning(TranslationOverride.id))
    return OverrideView(row_id, locale, key, text, now)  # type: ignore[arg-type]


def delete_override(session: Session, tenant_id: uuid.UUID, override_id: uuid.UUID) -> None:
    """Remove one of the tenant's overrides; NotFound for any other."""
    deleted = session.execute(delete(TranslationOverride).where(
        TranslationOverride.id == override_id, TranslationOverride.tenant_id == tenant_id)
        .returning(TranslationOverride.id)).first()
    if deleted is None:
        raise NotFound("no such override in this tenant", field="override_id")


def list_overrides(session: Session, tenant_id: uuid.UUID, locale: str | None = None) -> list[OverrideView]:
    """The tenant's overrides (of one locale, if given), by locale and key."""
    query = select(TranslationOverride).where(TranslationOverride.tenant_id == tenant_id)
    if locale is not None:
        query = query.where(TranslationOverride.locale == locale)
    rows = session.scalars(query.order_by(TranslationOverride.locale, TranslationOverride.key))
    return [_view(row) for row in rows]


def overrides_for(session: Session, tenant_id: uuid.UUID | None, locale: str) -> dict[str, str]:
    """The tenant's texts by key for ``locale`` (none without a tenant)."""
    if tenant_id is None:
        return {}
    rows = session.execute(select(TranslationOverride.key, TranslationOverride.text).where(
        TranslationOverride.tenant_id == tenant_id, TranslationOverride.locale == locale))
    return dict(rows.all())


def translator_for(session: Session, catalogues: Catalogues, tenant_id: uuid.UUID | None,
                   locale: str) -> Translator:
    """A translator for ``locale`` with the tenant's overrides."""
    return Translator(locale, catalogues, overrides_for(session, tenant_id, locale))


def strings(session: Session, catalogues: Catalogues, tenant_id: uuid.UUID, locale: str) -> list[StringView]:
    """Every product string in ``locale``, with the tenant's override where it has one."""
    check_locale(catalogues, locale)
    overrides = {o.key: o for o in list_overrides(session, tenant_id, locale)}
    plain = Translator(locale, catalogues)
    default = catalogues.default_locale
    return [StringView(key, catalogues.lookup(default, key) or key, plain.gettext(key), overrides.get(key))
            for key in catalogues.product_keys()]


def user_locale(session: Session, user_id: uuid.UUID) -> str | None:
    """The language the user chose (None: none chosen)."""
    return session.scalar(select(UserLocale.locale).where(UserLocale.user_id == user_id))


_USER_LOCALES = Sql(select(UserLocale.user_id, UserLocale.locale).where(
    UserLocale.user_id == any_(bindparam("ids", type_=ARRAY(UserLocale.user_id.type)))))


def locales_read(user_ids: Iterable[uuid.UUID]) -> Read[dict[uuid.UUID, str]]:
    """``user_locales`` as a read to make with others in one round trip (``read_together``)."""
    return Read(_USER_LOCALES, {"ids": list(user_ids)}, dict)


def user_locales(session: Session, user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The chosen language of each of ``user_ids`` that chose one."""
    ids = list(user_ids)
    if not ids:
        return {}
    return read_one(session, locales_read(ids))


def set_user_locale(session: Session, catalogues: Catalogues, user_id: uuid.UUID, locale: str | None) -> None:
    """Choose the user's language (None: follow the browser)."""
    if locale is None:
        session.execute(delete(UserLocale).where(UserLocale.user_id == user_id))
        return
    check_locale(catalogues, locale)
    session.execute(insert(UserLocale).values(user_id=user_id, locale=locale, updated_at=utcnow())
                    .on_conflict_do_update(index_elements=["user_id"],
                                           set_={"locale": locale, "updated_at": utcnow()}))


def locale_of(catalogues: Catalogues, chosen: str | None, accepted: Iterable[str] = ()) -> str:
    """The language to use: the user's choice, else the first of ``accepted`` (the browser's
    languages, best first) with a catalogue, else the default."""
    for wanted in (chosen, *accepted):
        found = catalogues.best_locale(wanted)
        if found:
            return found
    return catalogues.default_locale


def page_translator(provider: DataProvider, catalogues: Catalogues, *, user_id: uuid.UUID | None,
                    tenant_id: uuid.UUID | None, accepted: Iterable[str]) -> Translator:
    """The translator of a page: the user's language (else the browser's, else the default)
    with their tenant's overrides.

    Read on a session of its own, so a page (an error page too) renders whatever state the
    request's unit of work is in; a database that does not answer leaves the page in the
    browser's language, without overrides.
    """
    chosen, overrides = None, {}
    if user_id is not None or tenant_id is not None:
        try:
            with provider.management() as session:
                chosen = user_locale(session, user_id) if user_id is not None else None
                locale = locale_of(catalogues, chosen, accepted)
                overrides = overrides_for(session, tenant_id, locale)
        except SQLAlchemyError:
            log.warning("page in the browser's language: the database did not answer", exc_info=True)
    return Translator(locale_of(catalogues, chosen, accepted), catalogues, overrides)
