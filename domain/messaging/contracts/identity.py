"""Messages of the identity context."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from pydantic import EmailStr

from domain.messaging.contracts import Contract


class EmailVerificationRequestedV1(Contract):
    """Event: a signed-in user asked for a new link that verifies their address; the
    notifications worker emails it to that address.

    ``sealed_token`` is the link's secret sealed with the platform key
    (identity.PasswordSealer), as an invitation's is: the outbox row never holds it in clear,
    the database keeps only its hash, and only the email carries it readable.
    ``tenant_id`` is the tenant the user was acting in when asking (its branding dresses the
    email), None for a session in no tenant. ``actor_session_id`` is the session that asked:
    if it is signed out or cut off before the email goes out, the email is not sent.
    """

    message_type: ClassVar[str] = "identity.EmailVerificationRequested"

    user_id: uuid.UUID
    tenant_id: uuid.UUID | None = None
    email: EmailStr
    name: str
    sealed_token: str
    expires_at: datetime
    actor_session_id: uuid.UUID | None = None


class PasswordResetRequestedV1(Contract):
    """Event: someone asked for a link that sets a new password for the account with this
    address (not signed in: they lost the password); the notifications worker emails it to
    that address, so only the address's owner can use it.

    ``sealed_token`` travels sealed, as ``EmailVerificationRequestedV1``'s does. There is no
    tenant and no acting session: the request is anonymous, and the email is the
    platform's, in the account's language.
    """

    message_type: ClassVar[str] = "identity.PasswordResetRequested"

    user_id: uuid.UUID
    email: EmailStr
    name: str
    sealed_token: str
    expires_at: datetime
