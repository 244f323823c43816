"""Verify ID tokens of an external OpenID Connect provider (Auth0-compatible).

The platform never trusts an ID token on its face: ``IdTokenVerifier.verify`` checks its
signature against the keys the issuer publishes (found through the issuer's discovery
document), then its issuer, audience, authorized party, lifetime and nonce. Only then are
the claims handed to ``link_external_identity``, after which the platform issues its own
tokens.

Keys are cached for ``cache_seconds``. A token signed with a key the cache does not hold
(the provider rotated its keys) forces a refetch, rate limited twice: a given unknown key
id forces at most one refetch per ``refetch_interval`` (10 s), and forced refetches are
spaced by at least ``refetch_gap`` (1 s) whatever the key id, so a flood of tokens naming
made-up key ids costs the provider at most one request a second.
"""
from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import JWKRegistry, Key

from domain.errors import DomainError
from domain.identity.errors import BadExternalIdentity

log = logging.getLogger(__name__)

#: Signing algorithms accepted in ID tokens (never ``none``, never a shared secret).
ALGORITHMS = {"RS256": "RSA", "ES256": "EC"}
DISCOVERY_PATH = "/.well-known/openid-configuration"
DEFAULT_LEEWAY = 60.0
DEFAULT_REFETCH_INTERVAL = 10.0
DEFAULT_REFETCH_GAP = 1.0
_MAX_TRACKED_KIDS = 1024
MAX_TOKEN_LENGTH = 16_000
MAX_SUBJECT_LENGTH = 255

Fetch = Callable[[str], Mapping[str, Any]]


class ProviderUnavailable(DomainError):
    """The identity provider's discovery document or keys cannot be fetched."""

    status = 503

    def __init__(self, reason: str) -> None:
        super().__init__(reason, field="id_token")


@dataclass(frozen=True)
class ExternalClaims:
    """Who the provider says the user is, once the ID token is verified."""

    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None


def http_fetch(url: str, timeout: float = 5.0) -> Mapping[str, Any]:
    """GET ``url`` and return its JSON object; ProviderUnavailable on any failure."""
    try:
        response = requests.get(url, timeout=timeout, headers={"Accept": "application/json"})
        response.raise_for_status()
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        log.warning("cannot fetch %s from the OIDC provider: %s", url, exc)
        raise ProviderUnavailable(f"cannot fetch {url} from the identity provider; try again "
                                  "shortly") from None
    if not isinstance(body, dict):
        raise ProviderUnavailable(f"{url} did not return a JSON object")
    return body


def _refuse(reason: str) -> BadExternalIdentity:
    return BadExternalIdentity(reason, field="id_token")


@dataclass
class _Keys:
    """The issuer's published signing keys, as of ``fetched_at`` (monotonic seconds)."""

    by_kid: dict[str | None, list[Key]] = field(default_factory=dict)
    fetched_at: float = float("-inf")


class IdTokenVerifier:
    """Verifies ID tokens issued by ``issuer`` for ``client_id``; thread-safe."""

    def __init__(self, issuer: str, client_id: str, *, cache_seconds: float = 3600.0,
                 fetch: Fetch = http_fetch, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 leeway: float = DEFAULT_LEEWAY,
                 refetch_interval: float = DEFAULT_REFETCH_INTERVAL,
                 refetch_gap: float = DEFAULT_REFETCH_GAP) -> None:
        self.configured_issuer = issuer
        self.client_id = client_id
        self.cache_seconds = cache_seconds
        self.leeway = leeway
        self.refetch_interval = refetch_interval
        self.refetch_gap = refetch_gap
        self._fetch = fetch
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._metadata: Mapping[str, Any] | None = None
        self._keys = _Keys()
        self._last_forced: float = float("-inf")
        self._forced_for: dict[str | None, float] = {}  # unknown kid -> when it forced a refetch

    # -- discovery and keys -------------------------------------------------------------

    @property
    def discovery_url(self) -> str:
        """Where the issuer publishes its OpenID configuration."""
        return self.configured_issuer.rstrip("/") + DISCOVERY_PATH

    def metadata(self) -> Mapping[str, Any]:
        """The issuer's discovery document (fetched once, checked to name this issuer)."""
        with self._lock:
            return self._metadata_locked()

    @property
    def issuer(self) -> str:
        """The issuer exactly as the provider names itself (the ``iss`` tokens carry)."""
        return str(self.metadata()["issuer"])

    def _metadata_locked(self) -> Mapping[str, Any]:
        if self._metadata is None:
            document = self._fetch(self.discovery_url)
            issuer = document.get("issuer")
            # OIDC Discovery §4.3: the document must name the issuer it was fetched for; a
            # trailing slash is the one difference tolerated (Auth0 issuers end with one).
            if not isinstance(issuer, str) or issuer.rstrip("/") != self.configured_issuer.rstrip("/"):
                raise ProviderUnavailable(f"the discovery document at {self.discovery_url} names "
                                          f"issuer {issuer!r}, not {self.configured_issuer!r}")
            if not isinstance(document.get("jwks_uri"), str):
                raise ProviderUnavailable(f"the discovery document at {self.discovery_url} "
                                          "has no jwks_uri")
            self._metadata = document
        return self._metadata

    def _load_keys_locked(self) -> None:
        document = self._fetch(str(self._metadata_locked()["jwks_uri"]))
        entries = document.get("keys")
        if not isinstance(entries, list):
            raise ProviderUnavailable("the provider's JWKS has no key list")
        by_kid: dict[str | None, list[Key]] = {}
        for entry in entries:
            key = _signing_key(entry)
            if key is not None:
                by_kid.setdefault(entry.get("kid"), []).append(key)
        self._keys = _Keys(by_kid, self._monotonic())

    def _keys_for(self, kid: str | None, key_type: str) -> list[Key]:
        """Keys of ``key_type`` the issuer publishes under ``kid`` (all of them if no kid)."""
        with self._lock:
            now = self._monotonic()
            if now - self._keys.fetched_at >= self.cache_seconds:
                self._refresh_locked()
            found = self._matching(kid, key_type)
            if not found and self._may_force(kid, now):
                # An unknown key id: the provider may have rotated its keys.
                self._last_forced = self._forced_for[kid] = now
                self._load_keys_locked()
                found = self._matching(kid, key_type)
            return found

    def _may_force(self, kid: str | None, now: float) -> bool:
        """Whether an unknown ``kid`` may make us refetch the keys now."""
        if now - self._last_forced < self.refetch_gap:
            return False
        if len(self._forced_for) > _MAX_TRACKED_KIDS:
            self._forced_for = {k: t for k, t in self._forced_for.items()
                                if now - t < self.refetch_interval}
        return now - self._forced_for.get(kid, float("-inf")) >= self.refetch_interval

    def _refresh_locked(self) -> None:
        try:
            self._load_keys_locked()
        except ProviderUnavailable:
            if not self._keys.by_kid:
                raise
            # Keep the keys we have rather than refuse every sign-in while the provider is
            # down; try again after refetch_interval, not on every request.
            self._keys.fetched_at = self._monotonic() - self.cache_seconds + self.refetch_interval
            log.warning("cannot refresh the OIDC provider's keys; using the cached ones",
                        exc_info=True)

    def _matching(self, kid: str | None, key_type: str) -> list[Key]:
        if kid is None:
            candidates = [k for keys in self._keys.by_kid.values() for k in keys]
        else:
            candidates = self._keys.by_kid.get(kid, [])
        return [k for k in candidates if k.key_type == key_type]

    # -- verification -------------------------------------------------------------------

    def verify(self, id_token: str, nonce: str | None) -> ExternalClaims:
        """The verified claims of ``id_token``; BadExternalIdentity (401) saying why not."""
        if not nonce:
            raise _refuse("a nonce is required to accept an ID token")
        header = _header(id_token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise _refuse(f"ID tokens signed with {alg!r} are not accepted "
                          f"(only {', '.join(sorted(ALGORITHMS))})")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _refuse("the token's key id (kid) is malformed")
        keys = self._keys_for(kid, ALGORITHMS[alg])
        if not keys:
            raise _refuse(f"the provider publishes no {alg} key with id {kid!r}")
        if kid is None and len(keys) > 1:
            raise _refuse("the token names no key id (kid) and the provider has several keys")
        claims = _verified_payload(id_token, keys, alg)
        self._check_claims(claims, nonce)
        return self._external(claims)

    def _check_claims(self, claims: Mapping[str, Any], nonce: str) -> None:
        issuer = self.issuer
        if claims.get("iss") != issuer:
            raise _refuse(f"the token was issued by {claims.get('iss')!r}, not by {issuer!r}")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or self.client_id not in audiences:
            raise _refuse("the token was not issued for this application (aud)")
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != self.client_id:
            raise _refuse("the token's authorized party (azp) is not this application")
        self._check_times(claims)
        given = claims.get("nonce")
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), nonce.encode()):
            raise _refuse("the token's nonce does not match this sign-in")

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock()
        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
        if not _is_time(exp) or not _is_time(iat):
            raise _refuse("the token lacks a valid exp or iat")
        if nbf is not None and not _is_time(nbf):
            raise _refuse("the token's nbf is malformed")
        if now > exp + self.leeway:
            raise _refuse("the token has expired")
        if iat > now + self.leeway:
            raise _refuse("the token is issued in the future (iat)")
        if nbf is not None and nbf > now + self.leeway:
            raise _refuse("the token is not valid yet (nbf)")

    def _external(self, claims: Mapping[str, Any]) -> ExternalClaims:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT_LENGTH:
            raise _refuse("the token's subject (sub) is missing or malformed")
        email, name = claims.get("email"), claims.get("name")
        verified = claims.get("email_verified")
        return ExternalClaims(
            issuer=str(claims["iss"]), subject=subject,
            email=email if isinstance(email, str) and email else None,
            email_verified=verified is True or verified == "true",
            name=name if isinstance(name, str) and name else None)


def _signing_key(entry: object) -> Key | None:
    """A published key usable to check ID tokens, or None (encryption keys, odd entries)."""
    if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
        return None
    if entry.get("alg") is not None and entry.get("alg") not in ALGORITHMS:
        return None
    if entry.get("kty") not in ALGORITHMS.values():
        return None
    try:
        key = JWKRegistry.import_key(entry)
    except (JoseError, ValueError, TypeError):
        log.warning("ignoring a malformed key in the OIDC provider's JWKS (kid %r)", entry.get("kid"))
        return None
    return key


def _header(id_token: str) -> dict[str, Any]:
    if not isinstance(id_token, str) or not id_token or len(id_token) > MAX_TOKEN_LENGTH:
        raise _refuse("the ID token is missing or too long")
    try:
        compact = jws.extract_compact(id_token.encode())
        header = dict(compact.headers())
    except (JoseError, ValueError, TypeError, UnicodeError):
        raise _refuse("the ID token is not a signed JWT") from None
    return header


def _verified_payload(id_token: str, keys: list[Key], alg: str) -> dict[str, Any]:
    for key in keys:
        try:
            token = jwt.decode(id_token, key, algorithms=[alg])
        except BadSignatureError:
            continue
        except (JoseError, ValueError, TypeError) as exc:
            raise _refuse(f"the ID token is malformed ({exc})") from None
        return dict(token.claims)
    raise _refuse("the token's signature does not verify with the provider's keys")


def _is_time(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
