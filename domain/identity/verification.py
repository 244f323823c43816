"""Asking for a new link that verifies one's own address: the link and the message that
emails it, in one transaction (the notifications worker sends the email).

For an account whose welcome link expired, or that was made before addresses were verified:
until its address is verified, an external identity is not linked to it by email.
"""
from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.orm import Session

from domain.errors import NotFound
from domain.identity import services as identity
from domain.identity.errors import AlreadyVerified
from domain.identity.services import LinkView, PasswordSealer
from domain.messaging import outbox
from domain.messaging.contracts.identity import EmailVerificationRequestedV1


def request_email_verification(session: Session, user_id: uuid.UUID, *, tenant_id: uuid.UUID | None,
                               actor_session_id: uuid.UUID, lifetime: timedelta, sealer: PasswordSealer,
                               correlation_id: str | None) -> LinkView:
    """Record a new verification link for the account's current address and the
    ``identity.EmailVerificationRequested`` message that emails it; AlreadyVerified (409,
    ``email``) if the address is verified already.

    The token travels sealed: the outbox row never holds it in clear. The message acts for
    the asking session, so it is not sent once that session is signed out or cut off.

    The account's older live links stay valid until used or expired: each is single use,
    goes only to the same address, and using any of them verifies it; the emails may arrive
    out of order, and invalidating the older ones would make the one the user opens first
    fail. How many are made is bounded by the rate limit of the views that call this.
    """
    user = identity.users_by_id(session, [user_id]).get(user_id)
    if user is None or not user.active:
        raise NotFound("no such user", field="user_id")
    if identity.email_verified(session, user_id):
        raise AlreadyVerified()
    view, token = identity.start_email_verification(session, user_id, lifetime)
    outbox.record(session, EmailVerificationRequestedV1(
        user_id=user_id, tenant_id=tenant_id, email=view.email, name=user.name,
        sealed_token=sealer.seal(token), expires_at=view.expires_at, actor_session_id=actor_session_id),
        tenant_id=tenant_id, correlation_id=correlation_id)
    return view
