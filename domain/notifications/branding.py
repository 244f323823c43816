"""How a tenant's emails present themselves: the name, a reply-to address and a logo.

Emails always leave from the platform's address (``MAIL_FROM``), whose domain the mail
provider has verified (SPF, DKIM, SES identities); the tenant's name is shown as the sender
and its address is the one replies go to.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from domain.db.base import utcnow
from domain.errors import NotFound
from domain.notifications.errors import InvalidBranding
from domain.notifications.models import TenantBranding
from domain.tenancy import queries as tenancy
from domain.text import CONTROL

_LOGO = re.compile(r"https://[^\s\"'<>\x00-\x1f\x7f]{1,490}")


@dataclass(frozen=True)
class Branding:
    """What a tenant's emails show: its name, where replies go, its logo."""

    display_name: str
    sender_address: str | None = None
    logo_url: str | None = None


def branding_of(session: Session, tenant_id: uuid.UUID | None) -> Branding:
    """The tenant's branding, its name by default (the platform's, without a tenant)."""
    if tenant_id is None:
        return Branding("Allotment")
    row = session.get(TenantBranding, tenant_id)
    if row is not None and row.display_name:
        name = row.display_name
    else:
        try:
            name = tenancy.name_of(session, tenant_id)
        except NotFound:  # a tenant gone meanwhile: its last emails carry the platform's name
            name = "Allotment"
    return Branding(name, row.sender_address if row else None, row.logo_url if row else None)


def _name(value: str | None) -> str | None:
    value = (value or "").strip() or None
    if value is not None and (len(value) > 200 or CONTROL.search(value)):
        raise InvalidBranding("at most 200 characters, no control characters", field="display_name")
    return value


def _address(value: str | None) -> str | None:
    value = (value or "").strip() or None
    if value is None:
        return None
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidBranding(str(exc), field="sender_address") from None


def _logo(value: str | None) -> str | None:
    value = (value or "").strip() or None
    if value is not None and not _LOGO.fullmatch(value):
        raise InvalidBranding("must be an https:// URL of at most 500 characters", field="logo_url")
    return value


def set_branding(session: Session, tenant_id: uuid.UUID, *, display_name: str | None,
                 sender_address: str | None, logo_url: str | None) -> Branding:
    """Replace the tenant's branding (empty values: the defaults)."""
    values = {"display_name": _name(display_name), "sender_address": _address(sender_address),
              "logo_url": _logo(logo_url), "updated_at": utcnow()}
    session.execute(insert(TenantBranding).values(tenant_id=tenant_id, **values)
                    .on_conflict_do_update(index_elements=["tenant_id"], set_=values))
    return branding_of(session, tenant_id)
