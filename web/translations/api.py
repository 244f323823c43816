"""JSON API of the translations context: a tenant's overrides (``tenant:admin``), the
product strings they can override, and the caller's own language."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flask import g, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from domain.translations import services as translations
from domain.translations.services import OverrideView
from web.api import Query, parse_json, parse_query
from web.auth import requires
from web.db import management_db
from web.i18n import catalogues
from web.openapi import doc
from web.translations import bp

ADMIN = "tenant:admin"
LOCALE = r"^[a-z]{2,3}(_[A-Z]{2})?$"


class OverrideBody(BaseModel):
    """The tenant's own text for one product string (the key) in one locale."""

    model_config = ConfigDict(extra="forbid")

    locale: str = Field(pattern=LOCALE)
    key: str = Field(min_length=1, max_length=2000)
    text: str = Field(min_length=1, max_length=2000)


class OverrideOut(BaseModel):
    """A tenant override."""

    id: uuid.UUID
    locale: str
    key: str
    text: str
    updated_at: datetime


class OverrideList(BaseModel):
    """The tenant's overrides."""

    items: list[OverrideOut]


class StringOut(BaseModel):
    """A product string in one locale: the default text, the text in that locale, and the
    tenant's override (if any), which is what its pages and emails show."""

    key: str
    default_text: str
    text: str
    override: OverrideOut | None


class StringList(BaseModel):
    """Every product string in one locale."""

    locale: str
    items: list[StringOut]


class LocaleBody(BaseModel):
    """My language; null follows the browser (Accept-Language)."""

    model_config = ConfigDict(extra="forbid")

    locale: str | None = Field(pattern=LOCALE)


class LocaleQuery(Query):
    """Which locale (by default: every locale for overrides, the default one for strings)."""

    locale: str | None = Field(default=None, pattern=LOCALE)


class LocaleOut(BaseModel):
    """My language, the one in use, and those available."""

    locale: str | None
    effective: str
    available: list[str]


def _out(view: OverrideView) -> OverrideOut:
    return OverrideOut(**view.__dict__)


@bp.get("/api/v1/translations/strings")
@requires(ADMIN)
@doc("Product strings in a locale, with the tenant's overrides", query=LocaleQuery,
     responses={200: StringList}, auth=True)
def list_strings() -> Any:
    """Every product string in ``?locale=`` (default: the default locale)."""
    locale = parse_query(LocaleQuery).locale or catalogues().default_locale
    rows = translations.strings(management_db(), catalogues(), g.tenant_id, locale)
    items = [StringOut(key=r.key, default_text=r.default_text, text=r.override.text if r.override else r.text,
                       override=_out(r.override) if r.override else None) for r in rows]
    return jsonify(StringList(locale=locale, items=items).model_dump(mode="json"))


@bp.get("/api/v1/translations/overrides")
@requires(ADMIN)
@doc("The tenant's overrides", query=LocaleQuery, responses={200: OverrideList}, auth=True)
def list_overrides() -> Any:
    """The tenant's overrides (of ``?locale=``, if given)."""
    rows = translations.list_overrides(management_db(), g.tenant_id, parse_query(LocaleQuery).locale)
    return jsonify(OverrideList(items=[_out(r) for r in rows]).model_dump(mode="json"))


@bp.put("/api/v1/translations/overrides")
@requires(ADMIN)
@doc("Set the tenant's text for a product string", body=OverrideBody, responses={200: OverrideOut}, auth=True)
def set_override() -> Any:
    """Create or replace the tenant's override of one key in one locale."""
    body = parse_json(OverrideBody)
    view = translations.set_override(management_db(), catalogues(), g.tenant_id, locale=body.locale,
                                     key=body.key, text=body.text, by=g.user_id)
    return jsonify(_out(view).model_dump(mode="json"))


@bp.delete("/api/v1/translations/overrides/<uuid:override_id>")
@requires(ADMIN)
@doc("Remove one of the tenant's overrides", responses={204: "removed"}, auth=True)
def delete_override(override_id: uuid.UUID) -> Any:
    """The catalogue's text applies again."""
    translations.delete_override(management_db(), g.tenant_id, override_id)
    return "", 204


@bp.get("/api/v1/translations/locale")
@requires(None, tenant=False)
@doc("My language", responses={200: LocaleOut}, auth=True)
def my_locale() -> Any:
    """The language I chose (null: the browser's), the one in use, and those available."""
    chosen = translations.user_locale(management_db(), g.user_id)
    effective = translations.locale_of(catalogues(), chosen, [lang for lang, _ in request.accept_languages])
    return jsonify(LocaleOut(locale=chosen, effective=effective,
                             available=list(catalogues().locales)).model_dump(mode="json"))


@bp.put("/api/v1/translations/locale")
@requires(None, tenant=False)
@doc("Choose my language", body=LocaleBody, responses={200: LocaleOut}, auth=True)
def set_my_locale() -> Any:
    """Pages and emails in this language from now on (null: follow the browser)."""
    body = parse_json(LocaleBody)
    translations.set_user_locale(management_db(), catalogues(), g.user_id, body.locale)
    accepted = [lang for lang, _ in request.accept_languages]
    effective = translations.locale_of(catalogues(), body.locale, accepted)
    return jsonify(LocaleOut(locale=body.locale, effective=effective,
                             available=list(catalogues().locales)).model_dump(mode="json"))
