"""Messages of the tenancy context."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import EmailStr

from domain.messaging.contracts import Contract


class ProvisionTenantV1(Contract):
    """Command: provision a signed-up trial tenant (default roles, first admin user)."""

    message_type: ClassVar[str] = "tenancy.ProvisionTenant"
    kind: ClassVar[Literal["command", "event"]] = "command"

    signup_id: uuid.UUID
    tenant_id: uuid.UUID


class TenantProvisionedV1(Contract):
    """Event: a tenant is ready; its first admin can sign in."""

    message_type: ClassVar[str] = "tenancy.TenantProvisioned"

    tenant_id: uuid.UUID
    tenant_name: str
    admin_user_id: uuid.UUID
    admin_name: str
    admin_email: EmailStr


class TenantProvisionedV2(TenantProvisionedV1):
    """Event: a tenant is ready; its first admin can sign in, and verifies their address
    with the link in the welcome email.

    ``sealed_verification_token`` is the secret of that link sealed with the platform key
    (identity.PasswordSealer), as an invitation's token is: the outbox row never holds it in
    clear, the database keeps only its hash, and only the email carries it readable. A
    version 1 event is read with no link (the welcome email then has none).
    """

    version: ClassVar[int] = 2
    previous: ClassVar[type[Contract] | None] = TenantProvisionedV1

    sealed_verification_token: str | None = None
    verification_expires_at: datetime | None = None

    @classmethod
    def upgrade(cls, old: Contract) -> Contract:
        """Version 1's fields, with no verification link."""
        return cls(**old.model_dump())


class MigrateTenantDatabaseV1(Contract):
    """Command: upgrade one tenant database to the head revision."""

    message_type: ClassVar[str] = "tenancy.MigrateTenantDatabase"
    kind: ClassVar[Literal["command", "event"]] = "command"

    database: str


class PromoteTenantV1(Contract):
    """Command: run (or resume) a recorded promotion of a trial tenant to its own database."""

    message_type: ClassVar[str] = "tenancy.PromoteTenant"
    kind: ClassVar[Literal["command", "event"]] = "command"

    promotion_id: uuid.UUID
    tenant_id: uuid.UUID


class TenantPromotedV1(Contract):
    """Event: a tenant's data now lives in a database of its own."""

    message_type: ClassVar[str] = "tenancy.TenantPromoted"

    promotion_id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_name: str
    rows: int
    # Who asked for it (the buyer, or the operator), told when it is done.
    requested_by: uuid.UUID | None = None


class TrialEndingV1(Contract):
    """Event: a trial tenant's trial ends soon (beat, ``TRIAL_REMINDER_DAYS`` before); its
    owners and admins are reminded."""

    message_type: ClassVar[str] = "tenancy.TrialEnding"

    tenant_id: uuid.UUID
    tenant_name: str
    ends_at: datetime
