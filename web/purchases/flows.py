"""What the purchases API and pages share: the gateway, the idempotency key, the purchase."""
from __future__ import annotations

import re

from flask import current_app, g

from domain.purchases import services
from domain.purchases.errors import IDEMPOTENCY_KEY
from domain.purchases.gateway import PaymentGateway
from domain.purchases.services import PurchaseRequest, Recorded
from web.auth import Caller
from web.db import management_db
from web.errors import ApiError

# 1-255 printable ASCII characters (a UUID, a ULID, anything a client makes unique).
_KEY = re.compile(r"[\x20-\x7e]{1,255}")


def gateway() -> PaymentGateway:
    """This app's payment gateway (web.purchases registers it)."""
    return current_app.extensions["allotment.gateway"]  # type: ignore[no-any-return]


def idempotency_key_problem(value: str | None) -> str | None:
    """Why ``value`` is not a usable idempotency key, or None."""
    if value is None or value == "":
        return "this header is required: a key unique to this purchase request (e.g. a UUID)"
    if not _KEY.fullmatch(value):
        return "must be 1 to 255 printable ASCII characters"
    return None


def checked_idempotency_key(value: str | None) -> str:
    """The key, or 400 naming the header."""
    problem = idempotency_key_problem(value)
    if value is None or problem is not None:
        raise ApiError(400, "invalid_idempotency_key", problem or "this header is required", IDEMPOTENCY_KEY)
    return value


def buy(caller: Caller, request: PurchaseRequest, idempotency_key: str) -> Recorded:
    """Record the caller's purchase in its tenant (once per key)."""
    assert caller.tenant_id is not None  # the views require a tenant token
    return services.request_purchase(management_db(), gateway(), request, tenant_id=caller.tenant_id,
                                     buyer_user_id=caller.user_id, idempotency_key=idempotency_key,
                                     correlation_id=g.get("request_id"))
