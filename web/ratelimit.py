"""Brute force is slowed: sign-in and sign-up are rate limited per account and per IP.

Flask-Limiter keeps the counters in Redis (RATE_LIMIT_STORAGE_URL, else the broker's
Redis), so every web process shares them; if Redis cannot be reached it counts in memory
until Redis is back rather than failing the request. A refused request gets a 429 that
names the field and says when to retry (``Retry-After``, at least one second).

The per-account counters are shared by the API and the HTML forms (``shared_limit``
with one scope each), so switching between them does not reset the count. For sign-in
only failed attempts count against the account, so a user who signs in often is not
locked out; every attempt counts against the IP.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, make_response, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address

from config.settings import Settings
from web.errors import error_response

# Fixed windows: one Redis round trip per limit and request (a moving window costs a Lua
# script over a sorted set, and the X-RateLimit headers a second call per limit). A burst
# of up to twice the limit across a window boundary is the price.
limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=False,
                  strategy="fixed-window")


def init_app(app: Flask, settings: Settings) -> None:
    """Point the limiter at Redis and install it."""
    app.config.update(
        RATELIMIT_STORAGE_URI=settings.rate_limit_storage_url or settings.redis_url,
        RATELIMIT_STORAGE_OPTIONS={"socket_timeout": 2, "socket_connect_timeout": 2},
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_KEY_PREFIX="allotment:ratelimit",
        RATELIMIT_HEADERS_ENABLED=False,  # only a refused request says when to retry
    )
    limiter.init_app(app)

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded) -> Any:
        scope = exc.limit.scope if exc.limit is not None else ""
        field = "email" if scope.endswith(":account") else None
        what = "for this account" if field else "from this address"
        response = make_response(error_response(
            429, "too_many_requests", f"too many attempts {what} (limit {exc.description}); "
            "retry after the number of seconds in Retry-After", field))
        window = exc.limit.limit.get_expiry()
        current = limiter.current_limit
        seconds = current.reset_at - time.time() if current is not None else window
        response.headers["Retry-After"] = str(min(window, max(1, math.ceil(seconds))))
        return response


def _account_key() -> str:
    """The email the request is about (JSON body or form), keyed with the secret so the
    counters in Redis do not reveal which addresses are being tried; else the IP."""
    try:
        body = request.get_json(silent=True) if request.is_json else request.form
    except RecursionError:  # absurdly nested JSON: the view refuses it with a 400
        body = None
    email = body.get("email") if isinstance(body, dict) or hasattr(body, "get") else None
    if not isinstance(email, str) or not email.strip():
        return f"ip:{get_remote_address()}"
    secret = current_app.config["SECRET_KEY"].encode()
    digest = hmac.new(secret, email.strip().lower().encode(), hashlib.sha256).hexdigest()[:32]
    return "account:" + digest


def _setting(name: str) -> Callable[[], str]:
    return lambda: getattr(current_app.extensions["allotment.settings"], name)


def _failed(response: Any) -> bool:
    return response.status_code >= 400


def limit_sign_in(view: Callable[..., Any]) -> Callable[..., Any]:
    """Per IP (every attempt) and per account (failed attempts) for sign-in views."""
    view = limiter.shared_limit(_setting("rate_limit_sign_in"), scope="sign-in:account",
                                key_func=_account_key, deduct_when=_failed,
                                methods=["POST"])(view)
    return limiter.shared_limit(_setting("rate_limit_sign_in"), scope="sign-in:ip",
                                methods=["POST"])(view)


def limit_sign_up(view: Callable[..., Any]) -> Callable[..., Any]:
    """Per IP and per email for sign-up views."""
    view = limiter.shared_limit(_setting("rate_limit_sign_up"), scope="sign-up:account",
                                key_func=_account_key,
                                methods=["POST"])(view)
    return limiter.shared_limit(_setting("rate_limit_sign_up"), scope="sign-up:ip",
                                methods=["POST"])(view)
