"""Brute force is slowed: sign-in and sign-up are rate limited per account and per IP.

The counters live in Redis (RATE_LIMIT_STORAGE_URL, else the broker's Redis), so every
web process shares them; if Redis cannot be reached they are counted in memory until
Redis is back rather than failing the request. A refused request gets a 429 that names
the field and says when to retry (``Retry-After``, at least one second).

The per-account counters are shared by the API and the HTML forms (one scope each), so
switching between them does not reset the count. For sign-in only failed attempts count
against the account, so a user who signs in often is not locked out; every attempt counts
against the IP. Every sign-up attempt counts against both. Changing one's password checks
the current one, a guess like a sign-in's: it has the sign-in's limits, per user (failed
attempts) and per IP, so a stolen access token cannot be turned into the password.
Invitations are limited per tenant (every one): each sends an email from the platform.
So are new email verification links, per user (every request), and links that set a lost
password, per address and per IP (every request).

Fixed windows (the ``limits`` library's counters, keys and limit syntax, as Flask-Limiter
used them before): every counter a request touches is read or counted in one Redis round
trip, a Lua script, instead of one call per limit and key (four with the default limits);
and only the decorated views pay for it, no hook runs on every other request. A burst of
up to twice the limit across a window boundary is the price of fixed windows.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import wraps
from typing import Any, Literal

from flask import Flask, current_app, g, make_response, request
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from pydantic.networks import validate_email
from pydantic_core import PydanticCustomError
from redis.exceptions import RedisError
from werkzeug.wrappers import Response

from config.settings import Settings
from domain.held_redis import HeldRedis, Script
from web.api import json_body
from web.errors import error_response

log = logging.getLogger(__name__)

# Part of every counter's key (with the storage's own "LIMITS:LIMITER/" before it): the
# keys are the ones Flask-Limiter wrote, so counters carry over a deploy.
KEY_PREFIX = "allotment:ratelimit"
_EXTENSION = "allotment.rate_limits"  # this app's RateLimits
_POLICIES = "allotment.rate_limit_policies"  # "sign-in", "sign-up", "password", ... -> Policy
_DEDUCTIONS = "rate_limit_deductions"  # in ``g``: counters to count if the answer is a failure
_APPLIED = "rate_limits_applied"  # in ``g``: this request's attempt is counted

# "hit": count the attempt, refuse it past the limit; "test": refuse if the limit is
# already used up, count nothing (yet); "count": count, refuse nothing.
Mode = Literal["hit", "test", "count"]


class RateLimited(Exception):
    """An attempt refused by one of its limits: the ``index``-th counter applied."""

    def __init__(self, item: RateLimitItem, scope: str, retry_after: int, index: int) -> None:
        super().__init__(f"{item} ({scope})")
        self.item, self.scope, self.retry_after, self.index = item, scope, retry_after, index


@dataclass(frozen=True)
class Counter:
    """One fixed-window counter: a limit, for one key (an account or an IP), in a scope."""

    item: RateLimitItem
    scope: str
    key: str
    mode: Mode

    def storage_key(self) -> str:
        """The key of the ``limits`` storage (before the storage's own prefix)."""
        return self.item.key_for(KEY_PREFIX, self.key, self.scope)

    def counting(self) -> Counter:
        """The same counter, to be counted without refusing anything."""
        return Counter(self.item, self.scope, self.key, "count")


# Each KEYS[i] is read or counted in turn (ARGV: window seconds, limit, mode per key) until
# one refuses the attempt: returns its index (1-based) and milliseconds to its window's end,
# or {0, 0}. Counting sets the window's expiry on the first hit, as ``limits`` does.
_COUNT_UNTIL_REFUSED = """
for i, key in ipairs(KEYS) do
    local window, limit, mode = ARGV[3 * i - 2], tonumber(ARGV[3 * i - 1]), ARGV[3 * i]
    if mode == 'test' then
        if tonumber(redis.call('GET', key) or '0') >= limit then
            return {i, redis.call('PTTL', key)}
        end
    else
        local count = redis.call('INCR', key)
        if count == 1 then redis.call('EXPIRE', key, window) end
        if mode == 'hit' and count > limit then return {i, redis.call('PTTL', key)} end
    end
end
return {0, 0}
"""
_SCRIPT = Script(_COUNT_UNTIL_REFUSED)

# While Redis is unreachable it is tried again after 1, 2, 4, ... 32 seconds, then from 1 s
# again (Flask-Limiter's schedule).
_MAX_BACKOFF_STEPS = 5


class RateLimits:
    """Fixed-window counters in Redis, each request's in one round trip; memory without Redis."""

    def __init__(self, storage: Storage, held: HeldRedis | None = None) -> None:
        """``held``: the storage's Redis, reached on a connection per thread (the script's
        round trip is most of a sign-up's limits); None for another storage, whose own
        client runs the script (Sentinel, Cluster) or the ``limits`` library counts."""
        self._storage = storage
        self._held = held
        self._script = (storage.get_connection().register_script(_COUNT_UNTIL_REFUSED)
                        if isinstance(storage, RedisStorage) and held is None else None)
        self._memory = FixedWindowRateLimiter(MemoryStorage())
        self._lock = threading.Lock()
        self._dead_since: float | None = None
        self._checks = 0

    def apply(self, counters: Sequence[Counter]) -> None:
        """Read or count ``counters`` in order; ``RateLimited`` names the first that refuses
        (the ones after it are left alone)."""
        if self._shared_alive():
            try:
                refusal = self._apply_shared(counters)
            except (RedisError, StorageError):
                log.warning("rate limit storage unreachable: counting in memory", exc_info=True)
                self._mark_dead()
                refusal = _apply_with(self._memory, counters)
        else:
            refusal = _apply_with(self._memory, counters)
        if refusal is not None:
            raise refusal

    def _apply_shared(self, counters: Sequence[Counter]) -> RateLimited | None:
        """``apply`` on the shared storage: one script call on Redis."""
        if self._script is None and self._held is None:  # another storage of the ``limits`` library
            return _apply_with(FixedWindowRateLimiter(self._storage), counters)
        prefixed_key: Callable[[str], str] = self._storage.prefixed_key  # type: ignore[attr-defined]
        keys = [prefixed_key(counter.storage_key()) for counter in counters]
        argv = [value for counter in counters
                for value in (counter.item.get_expiry(), counter.item.amount, counter.mode)]
        if self._held is not None:
            index, pttl = self._held.run_script(_SCRIPT, keys, argv)
        else:
            index, pttl = self._script(keys=keys, args=argv)  # type: ignore[misc]
        if not index:
            return None
        return _refusal(counters, int(index) - 1, pttl / 1000 if pttl > 0 else 0)

    def _shared_alive(self) -> bool:
        """False while Redis is down; it is tried again on a growing back-off."""
        with self._lock:
            if self._dead_since is None:
                return True
            if time.time() - self._dead_since <= 2 ** self._checks:
                return False
            self._dead_since = time.time()
            self._checks = 0 if self._checks >= _MAX_BACKOFF_STEPS else self._checks + 1
        if not self._storage.check():
            return False
        log.info("rate limit storage recovered")
        with self._lock:
            self._dead_since, self._checks = None, 0
        return True

    def _mark_dead(self) -> None:
        """Count in memory from now on, until a check finds Redis back."""
        with self._lock:
            if self._dead_since is None:
                self._dead_since, self._checks = time.time(), 0


def _apply_with(strategy: FixedWindowRateLimiter, counters: Sequence[Counter]) -> RateLimited | None:
    """``RateLimits.apply`` through the ``limits`` library, one call per counter."""
    for index, counter in enumerate(counters):
        identifiers = (KEY_PREFIX, counter.key, counter.scope)
        if counter.mode == "test":
            allowed = strategy.test(counter.item, *identifiers)
        else:
            allowed = strategy.hit(counter.item, *identifiers) or counter.mode == "count"
        if not allowed:
            reset = strategy.storage.get_expiry(counter.storage_key())
            return _refusal(counters, index, reset - time.time())
    return None


def _refusal(counters: Sequence[Counter], index: int, seconds: float) -> RateLimited:
    """The refusal by ``counters[index]``: retry after the rest of its window (at least
    one second, at most the window)."""
    counter = counters[index]
    window = counter.item.get_expiry()
    return RateLimited(counter.item, counter.scope, min(window, max(1, math.ceil(seconds))), index)


@dataclass(frozen=True)
class Policy:
    """One kind of attempt: its limits and the scopes of its account and IP counters."""

    items: tuple[RateLimitItem, ...]
    account_scope: str
    ip_scope: str | None  # None: the account's counters only
    account_only_on_failure: bool
    field: str = "email"  # what the 429 of a full account counter names
    counted_for: str = "for this account"  # what its reason says the counter counts

    def counters(self, account_key: str, ip_key: str) -> list[Counter]:
        """The attempt's counters, in the order they are checked: by window length, the
        account's before the IP's within a length (the order Flask-Limiter used)."""
        account_mode: Mode = "test" if self.account_only_on_failure else "hit"
        ips = [Counter(item, self.ip_scope, ip_key, "hit") for item in self.items] if self.ip_scope else []
        counters = [Counter(item, self.account_scope, account_key, account_mode) for item in self.items] + ips
        return sorted(counters, key=lambda counter: counter.item)  # stable; by window length


def init_app(app: Flask, settings: Settings) -> None:
    """Point the counters at Redis; answer refusals with a 429; count failed sign-ins."""
    url = settings.rate_limit_storage_url or settings.redis_url
    storage = storage_from_string(url, socket_timeout=2, socket_connect_timeout=2)
    plain_redis = type(storage) is RedisStorage and url.partition("://")[0] in ("redis", "rediss")
    held = HeldRedis(url, socket_timeout=2, socket_connect_timeout=2) if plain_redis else None
    app.extensions[_EXTENSION] = RateLimits(storage, held)
    app.extensions[_POLICIES] = {
        "sign-in": Policy(tuple(parse_many(settings.rate_limit_sign_in)), "sign-in:account",
                          "sign-in:ip", account_only_on_failure=True),
        "sign-up": Policy(tuple(parse_many(settings.rate_limit_sign_up)), "sign-up:account",
                          "sign-up:ip", account_only_on_failure=False),
        "password": Policy(tuple(parse_many(settings.rate_limit_sign_in)), "password:account",
                           "password:ip", account_only_on_failure=True, field="current_password"),
        "invitation": Policy(tuple(parse_many(settings.rate_limit_invitations)), "invitation:account",
                             None, account_only_on_failure=False, counted_for="for this organisation"),
        "email-verification": Policy(tuple(parse_many(settings.rate_limit_email_verification)),
                                     "email-verification:account", None, account_only_on_failure=False),
        "password-reset": Policy(tuple(parse_many(settings.rate_limit_password_reset)),
                                 "password-reset:account", "password-reset:ip", account_only_on_failure=False,
                                 counted_for="for this address"),
    }

    @app.errorhandler(RateLimited)
    def _too_many(exc: RateLimited) -> Any:
        policy = next((p for p in app.extensions[_POLICIES].values() if p.account_scope == exc.scope), None)
        return too_many(policy, str(exc.item), exc.retry_after)

    @app.after_request
    def _count_failures(response: Response) -> Response:
        # A failed sign-in (refusals included) counts against the account it tried.
        deductions: list[Counter] | None = g.pop(_DEDUCTIONS, None)
        if deductions and response.status_code >= 400:
            app.extensions[_EXTENSION].apply(deductions)
        return response


def too_many(policy: Policy | None, limit: str, retry_after: int) -> Any:
    """The 429: which counter is full (the field of ``policy``, whose account counter it is;
    None for an IP's counter), and ``Retry-After``."""
    field = policy.field if policy else None
    what = policy.counted_for if policy else "from this address"
    response = make_response(error_response(
        429, "too_many_requests", f"too many attempts {what} (limit {limit}); "
        "retry after the number of seconds in Retry-After", field))
    response.headers["Retry-After"] = str(retry_after)
    return response


# What a plain address never holds: a display name's brackets, quotes, whitespace.
_NOT_PLAIN = frozenset('<>"\\ \t\r\n\x0b\x0c')


def _remote_address() -> str:
    """The client's address (ProxyFix has applied TRUSTED_PROXIES); of an IPv6 address its
    /64, which one subscriber holds whole: counting each address would let a client take a
    fresh counter with each of its 2**64."""
    address = request.remote_addr or "127.0.0.1"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return address


def _account_key() -> str:
    """The email the request is about (JSON body or form), keyed with the secret so the
    counters in Redis do not reveal which addresses are being tried; else the IP."""
    # JSON as the view reads it (parsed once for both; malformed: the view refuses it).
    body = json_body() if request.is_json else request.form
    email = body.get("email") if isinstance(body, dict) or hasattr(body, "get") else None
    return _key_of(email if isinstance(email, str) else None)


def _key_of(email: str | None) -> str:
    """The counter key of the account ``email`` names; the client's address without one."""
    if email is None or not email.strip():
        return f"ip:{_remote_address()}"
    secret = current_app.config["SECRET_KEY"].encode()
    # surrogatepass: JSON can carry half a UTF-16 pair, which the view then refuses (422).
    account = account_of(email).encode("utf-8", "surrogatepass")
    digest = hmac.new(secret, account, hashlib.sha256).hexdigest()[:32]
    return "account:" + digest


def account_of(email: str) -> str:
    """The account an email field names, as the views will read it: every way of writing
    one address (``Name <a@b>``, a full-width domain, capitals) is one account, so none of
    them gets a counter of its own.

    A plain ASCII address (no display name, quotes or spaces, no punycode label, which the
    validator writes in Unicode) needs only lower-casing: all the validator would change is
    the domain's case. Anything else goes through the validator the views use (pydantic's,
    email-validator's normalisation), kept off the common path for its cost; what it refuses,
    the view refuses too, so no sign-in gets through under it.
    """
    address = email.strip()
    if address.isascii() and not any(c in address for c in _NOT_PLAIN) and "xn--" not in address.lower():
        return address.lower()
    try:
        return validate_email(address)[1].lower()
    except PydanticCustomError:
        return address.lower()


def limit_sign_in(view: Callable[..., Any]) -> Callable[..., Any]:
    """Per IP (every attempt) and per account (failed attempts) for sign-in views."""
    return _limited_by("sign-in", view)


def limit_sign_in_as(
        email_of: Callable[[], str | None]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``limit_sign_in`` for a view that checks a password without an email field: the
    account is the one ``email_of`` names (None: counted by the client's address, as a
    sign-in without an email), on the sign-in's own counters, so guesses made there and at
    the sign-in add up."""
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        return _limited_by("sign-in", view, account=lambda: _key_of(email_of()))
    return decorate


def limit_sign_up(view: Callable[..., Any]) -> Callable[..., Any]:
    """Per account and per IP (every attempt) for sign-up views."""
    return _limited_by("sign-up", view)


def limit_password_change(view: Callable[..., Any]) -> Callable[..., Any]:
    """Per user (failed attempts) and per IP (every attempt) for the views that check the
    signed-in caller's current password; under the view's authentication (``g.caller``)."""
    return _limited_by("password", view, account=lambda: f"user:{g.caller.user_id}")


def limit_invitations(view: Callable[..., Any]) -> Callable[..., Any]:
    """Per tenant (every invitation) for the views that invite someone by email: a trial
    tenant, made by anyone in a minute, must not mail the world from the platform's address.
    Under the view's authentication (``g.caller``)."""
    return _limited_by("invitation", view, account=lambda: f"tenant:{g.caller.tenant_id}")


def limit_email_verification(view: Callable[..., Any]) -> Callable[..., Any]:
    """Per user (every request) for the views that email the caller a new link verifying
    their address: each sends an email from the platform. Under the view's authentication
    (``g.caller``)."""
    return _limited_by("email-verification", view, account=lambda: f"user:{g.caller.user_id}")


def limit_password_reset(view: Callable[..., Any]) -> Callable[..., Any]:
    """Per address and per IP (every request) for the views that email a link setting a new
    password: each sends an email from the platform to the address named, and the answer
    is the same whether an account has it or not."""
    return _limited_by("password-reset", view)


def _limited_by(policy_name: str, view: Callable[..., Any],
                account: Callable[[], str] | None = None) -> Callable[..., Any]:
    """``view`` with the named policy applied to every POST before it runs; ``account`` says
    whose attempt it is (by default the email the request is about)."""

    @wraps(view)
    def limited(*args: Any, **kwargs: Any) -> Any:
        # Once per request: a view run again (web.db.App, its tenant moved) is one attempt.
        if request.method == "POST" and not g.get(_APPLIED):
            g.setdefault(_APPLIED, True)
            _check(current_app.extensions[_POLICIES][policy_name], (account or _account_key)())
        return view(*args, **kwargs)

    return limited


def _check(policy: Policy, account_key: str) -> None:
    """Apply the policy's counters to this request; ``RateLimited`` if one refuses it."""
    counters = policy.counters(account_key, _remote_address())
    reached = counters
    try:
        current_app.extensions[_EXTENSION].apply(counters)
    except RateLimited as refusal:
        reached = counters[:refusal.index + 1]
        raise
    finally:
        # Tested counters are counted after the answer if it is a failure (a refusal
        # included): the ones reached, up to the one that refused.
        tested = [counter.counting() for counter in reached if counter.mode == "test"]
        if tested:
            g.setdefault(_DEDUCTIONS, []).extend(tested)
