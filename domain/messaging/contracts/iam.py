"""Messages of the IAM context."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from pydantic import EmailStr

from domain.messaging.contracts import Contract


class UserInvitedV1(Contract):
    """Event: a tenant admin invited someone; the notifications worker emails the link.

    ``sealed_token`` is the invitation's secret sealed with the platform key
    (identity.PasswordSealer): the outbox row never holds it in clear, the database keeps
    only its hash, and only the email carries it readable. ``actor_session_id`` is the
    inviter's session: if it is cut off before the email goes out, the email is not sent.
    """

    message_type: ClassVar[str] = "iam.UserInvited"

    invitation_id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_name: str
    email: EmailStr
    role: str
    sealed_token: str
    inviter_name: str
    expires_at: datetime
    actor_session_id: uuid.UUID | None = None
