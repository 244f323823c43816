"""Inviting someone to a tenant: the invitation and the message that emails it, in one
transaction (the notifications worker sends the email).

Only an inviter whose own address is verified invites: an invitation email carries the
tenant's name and the inviter's to any address, so whoever sends them must have shown that
they read a mailbox (a sign-up with a made-up address would otherwise be enough).
"""
from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.orm import Session

from domain.errors import Forbidden
from domain.iam import services as iam
from domain.iam.services import InvitationView
from domain.identity import services as identity
from domain.identity.services import PasswordSealer
from domain.messaging import outbox
from domain.messaging.contracts.iam import UserInvitedV1
from domain.tenancy import queries as tenancy_queries


class UnverifiedInviter(Forbidden):
    """The inviter has not verified their own address (403)."""

    def __init__(self) -> None:
        super().__init__("verify your own email address (the link we emailed you) before inviting anyone")


def invite(session: Session, tenant_id: uuid.UUID, *, email: str, role_name: str,
           invited_by: uuid.UUID, actor_session_id: uuid.UUID, lifetime: timedelta,
           sealer: PasswordSealer, correlation_id: str | None) -> InvitationView:
    """Record an invitation and the ``iam.UserInvited`` message that emails its link.

    The token travels sealed: the outbox row never holds it in clear. The message acts
    for the inviter's session, so it is not sent once that session is cut off.
    UnverifiedInviter (403) when the inviter's own address is not verified.
    """
    if not identity.email_verified(session, invited_by):
        raise UnverifiedInviter()
    view, token = iam.invite(session, tenant_id, email=identity.normalize_email(email),
                             role_name=role_name, invited_by=invited_by, lifetime=lifetime)
    inviter = identity.users_by_id(session, [invited_by])[invited_by]
    outbox.record(session, UserInvitedV1(
        invitation_id=view.id, tenant_id=tenant_id,
        tenant_name=tenancy_queries.name_of(session, tenant_id), email=view.email,
        role=view.role, sealed_token=sealer.seal(token), inviter_name=inviter.name,
        expires_at=view.expires_at, actor_session_id=actor_session_id),
        tenant_id=tenant_id, correlation_id=correlation_id)
    return view
