"""A lost password: a link emailed to the account's address sets a new one.

Asking names an address, not an account, and the answer never says whether one exists:
the link goes only to an active account's own address, so whoever reads that mailbox —
and only they — can choose a new password. Using the link sets it, proves the address
(``email_verified_at``), spends every other live link of the account, and the caller ends
every session of the account (web.identity.flows), as a password change does.

The link is short-lived (PASSWORD_RESET_MINUTES), single use, and dies when the account
changes its address, is deactivated or changes its password. Its token travels sealed in
the outbox, only its hash is kept, and only the email carries it readable. Accounts with no
password (an external provider's) and platform operators get no link.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.identity import services as identity
from domain.identity.errors import UnknownPasswordReset
from domain.identity.models import PasswordReset, User
from domain.identity.services import LinkView, PasswordSealer
from domain.messaging import outbox
from domain.messaging.contracts.identity import PasswordResetRequestedV1


def request_password_reset(session: Session, email: str, *, lifetime: timedelta, sealer: PasswordSealer,
                           correlation_id: str | None) -> bool:
    """Record a reset link for the account with this address and the
    ``identity.PasswordResetRequested`` message that emails it, in the caller's
    transaction; True if a link was made. The caller answers alike either way.

    No link is made for an account that is deactivated, that has no password (made by an
    external provider: it signs in there, and a password set by email would sidestep the
    provider's own checks and outlive its removal there), or of a platform operator (whose
    mailbox would then be the key to every tenant: an operator's password is changed by
    the operator, signed in, or set anew with ``flask users set-password``).
    """
    user = session.scalar(select(User).where(User.email == identity.normalize_email(email)))
    if user is None or not user.active or user.password_hash is None or user.is_operator:
        return False
    view, token = start_password_reset(session, user.id, lifetime)
    outbox.record(session, PasswordResetRequestedV1(
        user_id=user.id, email=user.email, name=user.name, sealed_token=sealer.seal(token),
        expires_at=view.expires_at), tenant_id=None, correlation_id=correlation_id)
    return True


def start_password_reset(session: Session, user_id: uuid.UUID,
                         lifetime: timedelta) -> tuple[LinkView, str]:
    """Record a reset link for the account's current address; return it and its token,
    which only the email to that address may carry (the database keeps its hash)."""
    return identity.start_link(session, PasswordReset, user_id, lifetime)


def password_reset(session: Session, token: str) -> LinkView:
    """The live link behind ``token``; UnknownPasswordReset if it is unknown, used or
    expired, or its account is deactivated or no longer has the address it was sent to."""
    found = identity.live_link(session, PasswordReset, token)
    if found is None or not found[1]:
        raise UnknownPasswordReset()
    return found[0]


def reset_password(session: Session, token: str, new_password: str) -> uuid.UUID:
    """Use a reset link once: the account gets ``new_password`` and its address counts as
    verified; this link and every other live one of the account are spent. Returns the
    user, whose sessions the caller ends. On UnknownPasswordReset the caller rolls back.

    The account's row is locked first: concurrent uses of its links (a double click, two
    tabs, the owner racing someone else), a deactivation and a password change all queue
    there, and each then finds what the one before it did: the link spent, the account
    deactivated or its address changed.
    """
    view = password_reset(session, token)
    new_hash = identity.hash_password(new_password)  # before the lock: argon2 takes a while
    user = identity.locked_user(session, view.user_id, writes=True)
    if user is None or not user.active or user.email != view.email:
        raise UnknownPasswordReset()
    if view.id not in identity.spend_password_resets(session, user.id):
        raise UnknownPasswordReset()  # used or expired meanwhile
    user.password_hash = new_hash
    identity.mark_verified(user)
    session.flush()
    return user.id


def prune_password_resets(session: Session, *, older_than: datetime) -> int:
    """Delete the reset links used or expired before ``older_than``; how many."""
    return identity.prune_emailed_links(session, PasswordReset, older_than=older_than)
