"""The addresses that get no more email, for operators: listed, looked up, and let go.

An address is suppressed for good when SES reports a permanent bounce or a complaint for
it, or a mail server refuses it (``deliveries.mark_undeliverable``); every email to it is
then recorded ``suppressed`` instead of being sent, password resets and invitations
included. A mistaken complaint, a mailbox that was full for a week or an address that was
fixed would stay blocked forever without an operator letting it go.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from domain.errors import NotFound
from domain.notifications.deliveries import normal_address
from domain.notifications.models import UndeliverableAddress
from domain.text import CONTROL

log = logging.getLogger(__name__)
MAX_ADDRESS = 320  # the column's length


@dataclass(frozen=True)
class Suppressed:
    """One address that gets no more email, and why."""

    address: str
    reason: str
    detail: str | None
    created_at: datetime


def _view(row: UndeliverableAddress) -> Suppressed:
    return Suppressed(row.address, row.reason, row.detail, row.created_at)


def listed(session: Session, *, reason: str | None = None, limit: int = 50,
           offset: int = 0) -> list[Suppressed]:
    """Suppressed addresses, newest first (of one ``reason``, if given)."""
    query = select(UndeliverableAddress).order_by(UndeliverableAddress.created_at.desc(),
                                                  UndeliverableAddress.address)
    if reason is not None:
        query = query.where(UndeliverableAddress.reason == reason)
    return [_view(row) for row in session.scalars(query.limit(limit).offset(offset))]


def suppressed(session: Session, address: str) -> Suppressed:
    """The suppression of ``address`` (any case); NotFound naming ``address`` if it gets email."""
    row = session.get(UndeliverableAddress, _key(address))
    if row is None:
        raise NotFound("this address is not suppressed", field="address")
    return _view(row)


def _key(address: str) -> str:
    """The list's key for ``address``; NotFound for what no address on it can be (a control
    character, NUL included, which PostgreSQL refuses in text; longer than the column)."""
    key = normal_address(address)
    if CONTROL.search(key) or len(key) > MAX_ADDRESS:
        raise NotFound("this address is not suppressed", field="address")
    return key


def let_go(session: Session, address: str, *, by: uuid.UUID | None) -> Suppressed:
    """Send email to ``address`` again; what its suppression was (NotFound if there was none).
    Emails recorded ``suppressed`` meanwhile stay so: they are not sent late."""
    row = session.scalars(delete(UndeliverableAddress)
                          .where(UndeliverableAddress.address == _key(address))
                          .returning(UndeliverableAddress)).first()
    if row is None:
        raise NotFound("this address is not suppressed", field="address")
    log.warning("operator %s let %s get email again (suppressed for %s since %s)", by, row.address,
                row.reason, row.created_at.isoformat())
    return _view(row)
