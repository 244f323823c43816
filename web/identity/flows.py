"""What the identity API and pages share: start, rotate and end sessions, and issue tokens.

Each function works on the request's management session; the request's unit of work
commits it. Revocations are written to the revocation store before the commit
(web.auth.revoke_sessions), so a cut-off takes effect even if the response is lost.
"""
from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from flask import current_app, g, request

from domain.db.base import utcnow
from domain.identity import recovery, sessions, verification
from domain.identity import services as identity
from domain.identity.services import LinkView, SignIn
from domain.identity.sessions import RefreshReused, SessionRefused
from domain.text import CONTROL
from web.auth import AccessUnavailable, Caller, TokenPair, Unauthorized, issue_tokens, revoke_sessions
from web.db import management_db, sealer

log = logging.getLogger(__name__)
# Not a local path: a scheme or host ("//host", "/\\host"), or what a browser would strip.
_UNSAFE_PATH = re.compile(r"[\x00-\x20\x7f\\]")
_MAX_PATH = 2000


def local_path(target: str | None) -> str | None:
    """``target`` if it is a path on this site to send the browser on to, else None (no
    open redirect): the pages' and the provider callback's ``next``."""
    if (not target or not target.startswith("/") or target.startswith("//")
            or len(target) > _MAX_PATH or _UNSAFE_PATH.search(target) or not target.isprintable()):
        return None
    return target


def _lifetime() -> timedelta:
    return current_app.config["JWT_REFRESH_TOKEN_EXPIRES"]  # type: ignore[no-any-return]


def start(signed_in: SignIn, method: str, *, ends_by: datetime | None = None,
          parent_id: uuid.UUID | None = None) -> TokenPair:
    """Open a session for a user who has proved who they are; its first tokens. ``ends_by``
    and ``parent_id``: the session may last no longer than that, and is revoked with the
    session ``parent_id`` (one opened from another, which proved nothing new, ends with it)."""
    grant = sessions.start_session(
        management_db(), user_id=signed_in.user_id, tenant_id=signed_in.tenant_id,
        operator=signed_in.operator, method=method, lifetime=_lifetime(), ends_by=ends_by,
        parent_id=parent_id,
        # Header text kept with the session: PostgreSQL refuses NUL, and the rest has no use there.
        user_agent=CONTROL.sub("", request.user_agent.string),
        ip=CONTROL.sub("", request.remote_addr or ""))
    return issue_tokens(grant)


def switch_tenant(caller: Caller, tenant_slug: str) -> TokenPair:
    """A session in another of the caller's tenants, ending when the caller's session does,
    and revoked with it: switching proves nothing new (an access token would otherwise buy a
    fresh session, again and again, that outlives a sign-out). From a session that has ended:
    Unauthorized."""
    db = management_db()
    signed_in = identity.switch_tenant(db, caller.user_id, tenant_slug)
    ends = sessions.session_end(db, caller.session_id, lock=True)
    if ends is None or ends <= utcnow():
        raise Unauthorized("session has ended")
    return start(signed_in, "switch", ends_by=ends, parent_id=caller.session_id)


def refresh(claims: dict[str, Any]) -> TokenPair:
    """Rotate the session's refresh token; a reused one revokes the session (401)."""
    try:
        session_id = uuid.UUID(str(claims.get("sid")))
    except ValueError:
        raise SessionRefused("refresh token claims are malformed") from None
    db = management_db()
    try:
        grant = sessions.rotate(db, session_id, str(claims.get("jti")))
    except RefreshReused as reused:
        # The 401 rolls the request back: commit the revocation first, so that Redis being
        # unreachable cannot undo it (the refresh tokens are refused from the database).
        db.commit()
        try:
            revoke_sessions(reused.session_ids)
        except AccessUnavailable:
            log.warning("sessions %s revoked for refresh-token reuse, but Redis is unreachable: "
                        "their access tokens live on until they expire", reused.session_ids)
        raise
    return issue_tokens(grant)


def sign_out(caller: Caller) -> int:
    """End the caller's session and those switched from it; how many."""
    ids = sessions.revoke(management_db(), caller.session_id, "signed out")
    revoke_sessions(ids)
    return len(ids)


def sign_out_everywhere(user_id: uuid.UUID, reason: str, *,
                        tenant_id: uuid.UUID | None = None) -> int:
    """End every session of a user (only those in ``tenant_id`` if given)."""
    ids = sessions.revoke_user(management_db(), user_id, reason, tenant_id=tenant_id)
    revoke_sessions(ids)
    return len(ids)


def sign_out_one(caller: Caller, session_id: uuid.UUID) -> int:
    """End one of the caller's own sessions and those switched from it; how many (0 if it
    is not theirs)."""
    if sessions.owner_of(management_db(), session_id) != caller.user_id:
        return 0
    ids = sessions.revoke(management_db(), session_id, "signed out")
    revoke_sessions(ids)
    return len(ids)


def change_password(caller: Caller, current: str, new: str) -> TokenPair:
    """Change the password, cut off every session, and start a new one for the caller."""
    db = management_db()
    identity.change_password(db, caller.user_id, current, new)
    sign_out_everywhere(caller.user_id, "password changed")
    return start(SignIn(caller.user_id, caller.tenant_id, caller.operator), "password")


def request_email_verification(caller: Caller) -> LinkView:
    """Record a new link verifying the caller's own address and queue its email
    (notifications); AlreadyVerified (409, ``email``) if it is verified."""
    lifetime = current_app.extensions["allotment.settings"].email_verification_lifetime
    return verification.request_email_verification(
        management_db(), caller.user_id, tenant_id=caller.tenant_id, actor_session_id=caller.session_id,
        lifetime=lifetime, sealer=sealer(), correlation_id=g.get("request_id"))


def request_password_reset(email: str) -> None:
    """Record a link that sets a new password for the active account with this address, if
    there is one, and queue its email (notifications); nothing says which it was."""
    lifetime = current_app.extensions["allotment.settings"].password_reset_lifetime
    recovery.request_password_reset(management_db(), email, lifetime=lifetime, sealer=sealer(),
                                    correlation_id=g.get("request_id"))


def reset_password(token: str, new_password: str) -> None:
    """Use a reset link: the new password is set, and every session of the account ends
    (whoever held the old password, or a token made with it, is out)."""
    user_id = recovery.reset_password(management_db(), token, new_password)
    sign_out_everywhere(user_id, "password reset")
