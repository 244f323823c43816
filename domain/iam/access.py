""""May this user do this": the one place that answers it, for the web tier and for tasks.

``Access`` is what a user may do in one tenant. ``resolve`` reads it from the database;
``PermissionCache`` keeps resolved answers in the process, keyed by the tenant's IAM
version. The version is a random token in Redis that every role, membership or
deactivation change replaces (``invalidate``, after the change commits), so a cached
answer is used only while nothing it depends on has changed. The web edge reads the
version in the same round trip as the revocation check.
"""
from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock

from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.iam.models import Membership, ResellerAdmin, Role, TenantUser
from domain.identity.revocation import CHANNEL
from domain.tenancy import queries as tenancy_queries

_VERSION_PREFIX = "allotment:iam:version:"
# Operations across tenants that only platform operators may perform.
OPERATOR = "platform:operator"
# What a reseller admin may do for the tenants its reseller sold.
RESELLER_PERMISSIONS: frozenset[str] = frozenset({"subscriptions:manage", "purchases:create"})


@dataclass(frozen=True)
class Access:
    """What ``user_id`` may do in ``tenant_id``."""

    user_id: uuid.UUID
    tenant_id: uuid.UUID
    member: bool  # holds an active membership (a deactivated member is not one)
    permissions: frozenset[str]

    def may(self, permission: str) -> bool:
        """True if the user holds ``permission`` in the tenant."""
        return self.member and permission in self.permissions


def resolve(session: Session, user_id: uuid.UUID, tenant_id: uuid.UUID) -> Access:
    """Read a user's standing and permissions in a tenant from the database."""
    active = session.scalar(select(TenantUser.active).where(
        TenantUser.tenant_id == tenant_id, TenantUser.user_id == user_id))
    if not active:
        return Access(user_id, tenant_id, False, frozenset())
    rows = session.scalars(
        select(Role.permissions).join(Membership, Membership.role_id == Role.id)
        .where(Membership.user_id == user_id, Membership.tenant_id == tenant_id))
    return Access(user_id, tenant_id, True, frozenset(p for perms in rows for p in perms))


def may(session: Session, user_id: uuid.UUID, tenant_id: uuid.UUID, permission: str) -> bool:
    """The uncached decision, for tasks and tools: may ``user_id`` do ``permission``?"""
    return resolve(session, user_id, tenant_id).may(permission)


def reseller_may(session: Session, user_id: uuid.UUID, tenant_id: uuid.UUID,
                 permission: str) -> bool:
    """True if ``user_id`` administers the reseller that sold ``tenant_id`` and the
    permission is one resellers hold for their tenants."""
    if permission not in RESELLER_PERMISSIONS:
        return False
    reseller_id = tenancy_queries.reseller_of(session, tenant_id)
    if reseller_id is None:
        return False
    return session.scalar(select(ResellerAdmin.user_id).where(
        ResellerAdmin.reseller_id == reseller_id, ResellerAdmin.user_id == user_id)) is not None


def version_key(tenant_id: uuid.UUID | str) -> str:
    """The Redis key holding a tenant's IAM version."""
    return f"{_VERSION_PREFIX}{tenant_id}"


class PermissionCache:
    """Resolved ``Access`` per (user, tenant, IAM version), bounded, in this process."""

    def __init__(self, redis: Redis, size: int) -> None:
        self.redis = redis
        self.size = size
        self._entries: OrderedDict[tuple[uuid.UUID, uuid.UUID, str], Access] = OrderedDict()
        self._lock = Lock()

    def get(self, user_id: uuid.UUID, tenant_id: uuid.UUID, version: str) -> Access | None:
        """The cached answer for this version, if any."""
        key = (user_id, tenant_id, version)
        with self._lock:
            access = self._entries.get(key)
            if access is not None:
                self._entries.move_to_end(key)
            return access

    def put(self, access: Access, version: str) -> None:
        """Remember ``access`` for this version of its tenant."""
        with self._lock:
            self._entries[(access.user_id, access.tenant_id, version)] = access
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def current_version(self, tenant_id: uuid.UUID) -> str:
        """The tenant's version, creating one if Redis has none (e.g. after a flush)."""
        # SET NX then GET in one round trip (SET ... NX GET needs Redis 7): keep an
        # existing version, else store ours; either way GET returns the one that counts.
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(version_key(tenant_id), uuid.uuid4().hex, nx=True)
            pipe.get(version_key(tenant_id))
            _, current = pipe.execute()
        return _text(current)

    def invalidate(self, tenant_id: uuid.UUID) -> None:
        """Drop every cached answer for the tenant, in every process (call after commit)."""
        version = uuid.uuid4().hex
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(version_key(tenant_id), version)
            pipe.publish(CHANNEL, f"iam {tenant_id} {version}")
            pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
