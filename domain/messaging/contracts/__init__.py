"""Versioned message contracts shared by sender and handler.

A contract names its type and version. A consumer accepts the previous version of each
contract: a contract that replaced an older one sets ``previous`` and ``upgrade``.
"""
from __future__ import annotations

import uuid
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict


class Contract(BaseModel):
    """Base of every message payload."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_type: ClassVar[str]
    version: ClassVar[int] = 1
    kind: ClassVar[Literal["command", "event"]] = "event"
    previous: ClassVar[type[Contract] | None] = None

    @classmethod
    def upgrade(cls, old: Contract) -> Contract:
        """Turn a message of the previous version into this one."""
        raise NotImplementedError(f"{cls.__name__} has no previous version")

    @property
    def actor_session(self) -> Any:
        """The session of the user this message acts for, if it acts for one: a task
        refuses to act once that session is signed out or cut off."""
        return getattr(self, "actor_session_id", None)

    def other_tenant(self, tenant_id: uuid.UUID | None) -> uuid.UUID | None:
        """The tenant this message names, when it is not ``tenant_id``, the tenant it is
        recorded and routed for (None when they agree, or either names none): such a message
        is neither recorded nor run."""
        named = getattr(self, "tenant_id", None)
        return named if tenant_id is not None and named is not None and named != tenant_id else None

    @classmethod
    def tenantless(cls) -> bool:
        """True for a message of no tenant (no ``tenant_id`` field: an account's own business,
        such as its password reset): it is recorded, and run, for no tenant."""
        return "tenant_id" not in cls.model_fields

    @classmethod
    def parse(cls, version: int, payload: dict[str, Any]) -> Contract:
        """Validate a payload of this version or the previous one."""
        if version == cls.version:
            return cls.model_validate(payload)
        if cls.previous is not None and version == cls.previous.version:
            return cls.upgrade(cls.previous.model_validate(payload))
        raise ValueError(f"{cls.message_type} v{version} is not accepted (current v{cls.version})")
