"""Who handles what: one handler per command, any number of subscribers per event.

Handlers are named ``<context>.<function>``; the Celery task that runs one is
``tasks.<context>.<function>`` and is routed to the ``<context>`` queue. This table is the
database-side fan-out of the seeds' SNS topics and SQS queues (DESIGN §4.1).
"""
from __future__ import annotations

from typing import Literal

from domain.messaging.contracts import Contract
from domain.messaging.contracts import iam as iam_contracts
from domain.messaging.contracts import tenancy as tenancy_contracts

# Which database a handler writes (and keeps its inbox in): the management database, or
# the database of the message's tenant.
Target = Literal["management", "tenant"]
TARGETS: dict[str, Target] = {
    "tenancy.provision_tenant": "management",
    "notifications.record_welcome_notice": "tenant",
    "notifications.send_invitation": "management",
}

COMMAND_HANDLERS: dict[str, str] = {
    tenancy_contracts.ProvisionTenantV1.message_type: "tenancy.provision_tenant",
}

SUBSCRIBERS: dict[str, tuple[str, ...]] = {
    tenancy_contracts.TenantProvisionedV1.message_type: ("notifications.record_welcome_notice",),
    iam_contracts.UserInvitedV1.message_type: ("notifications.send_invitation",),
}

CONTRACTS: dict[str, type[Contract]] = {
    c.message_type: c
    for c in (
        tenancy_contracts.ProvisionTenantV1,
        tenancy_contracts.TenantProvisionedV1,
        iam_contracts.UserInvitedV1,
    )
}


def handlers_for(message: Contract) -> tuple[str, ...]:
    """The handler names a message is delivered to (exactly one for a command)."""
    if message.kind == "command":
        return (COMMAND_HANDLERS[message.message_type],)
    return SUBSCRIBERS.get(message.message_type, ())


def task_name(handler: str) -> str:
    """The Celery task that runs ``handler``."""
    return f"tasks.{handler}"


def target_of(handler: str) -> Target:
    """The database ``handler`` writes: "management" or "tenant"."""
    return TARGETS[handler]
