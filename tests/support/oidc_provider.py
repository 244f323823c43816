"""A local OpenID Connect provider over real HTTP, for the sign-in tests.

It serves, on 127.0.0.1 and a free port: the discovery document, its JWKS (counting how
often they are fetched), ``/authorize`` (approves ``user`` at once, or refuses with
``deny``), and ``/token`` (authorization code grant: checks the client, the redirect URI,
that the code is used once, and the PKCE verifier against the S256 challenge). Its keys are
its own RSA keys; ``rotate_key`` adds one with a new ``kid``. ``mint`` signs ID tokens
directly, with any claims, header or key, for the API flow and its attacks.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

SigningKey = RSAKey | ECKey
CLIENT_ID = "allotment-test"
CLIENT_SECRET = "provider-secret-0123"


class _QuietHandler(WSGIRequestHandler):
    """Serves requests without logging each one to stderr."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log nothing."""


@dataclass
class ProviderUser:
    """The account the provider signs in when asked to authorize."""

    subject: str
    email: str | None
    email_verified: bool = True
    name: str | None = "Olive Idp"


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None


@dataclass
class TokenRequest:
    """What the client sent to /token, and what the provider answered."""

    form: dict[str, str]
    status: int
    error: str | None


@dataclass
class _State:
    keys: list[RSAKey] = field(default_factory=list)
    codes: dict[str, _Grant] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[TokenRequest] = field(default_factory=list)
    jwks_fetches: int = 0


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JOSE writes it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _s256(verifier: str) -> str:
    return b64url(hashlib.sha256(verifier.encode()).digest())


def new_rsa_key(kid: str | None = None) -> RSAKey:
    """A fresh RSA signing key with a ``kid``."""
    return RSAKey.generate_key(2048, parameters={"kid": kid or secrets.token_hex(8), "use": "sig",
                                                 "alg": "RS256"}, private=True)


def new_ec_key(kid: str | None = None) -> ECKey:
    """A fresh P-256 signing key with a ``kid``."""
    return ECKey.generate_key("P-256", parameters={"kid": kid or secrets.token_hex(8), "use": "sig",
                                                   "alg": "ES256"}, private=True)


class OidcProvider:
    """An OpenID Connect provider serving one client over HTTP on 127.0.0.1."""

    def __init__(self, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET,
                 user: ProviderUser | None = None) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.user = user or ProviderUser(subject="auth0|" + secrets.token_hex(6),
                                         email=f"idp-{secrets.token_hex(5)}@example.com")
        self.deny = False  # /authorize answers access_denied
        self.id_token_lifetime = 300
        # Claims /token puts in its ID tokens instead of the true ones (None removes one).
        self.id_token_overrides: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._state = _State(keys=[new_rsa_key()])
        self._urls = Map([
            Rule("/.well-known/openid-configuration", endpoint="discovery"),
            Rule("/jwks", endpoint="jwks"),
            Rule("/authorize", endpoint="authorize"),
            Rule("/token", endpoint="token", methods=["POST"]),
        ])
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, self._wsgi, threaded=True,
                                                     request_handler=_QuietHandler)
        self.issuer = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="oidc-provider",
                                        daemon=True)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> OidcProvider:
        """Serve requests in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    # -- what tests look at and change ----------------------------------------------------

    @property
    def jwks_fetches(self) -> int:
        """How many times the JWKS has been served."""
        with self._lock:
            return self._state.jwks_fetches

    @property
    def key(self) -> RSAKey:
        """The key new tokens are signed with (the newest)."""
        with self._lock:
            return self._state.keys[-1]

    @property
    def token_requests(self) -> list[TokenRequest]:
        """Every request made to /token, oldest first."""
        with self._lock:
            return list(self._state.token_requests)

    @property
    def authorize_requests(self) -> list[dict[str, str]]:
        """The query of every request made to /authorize, oldest first."""
        with self._lock:
            return list(self._state.authorize_requests)

    def rotate_key(self, *, drop_old: bool = False) -> str:
        """Publish a new signing key and sign with it from now on; its ``kid``."""
        key = new_rsa_key()
        with self._lock:
            self._state.keys = [key] if drop_old else [*self._state.keys, key]
        return str(key.kid)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """The claims of an ID token for ``user``, with ``overrides`` (None removes a claim)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "sub": self.user.subject, "aud": self.client_id,
            "iat": now, "exp": now + self.id_token_lifetime, "email": self.user.email,
            "email_verified": self.user.email_verified, "name": self.user.name}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def mint(self, nonce: str | None = None, *, claims: dict[str, Any] | None = None,
             header: dict[str, Any] | None = None, key: SigningKey | None = None,
             alg: str | None = None, hmac_secret: bytes | None = None) -> str:
        """An ID token for ``user`` carrying ``nonce``.

        ``claims`` override (None removes) claims; ``header`` overrides the JOSE header;
        ``key`` signs instead of the current key. ``alg="none"`` makes an unsigned token and
        ``alg="HS256"`` one signed with ``hmac_secret`` (default: the current public key's PEM,
        the algorithm-confusion attack).
        """
        return sign(self.claims(**{"nonce": nonce, **(claims or {})}), key or self.key, header=header,
                    alg=alg, hmac_secret=hmac_secret)

    # -- HTTP -------------------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            endpoint, _ = self._urls.bind_to_environ(environ).match()
            response = getattr(self, f"_{endpoint}")(request)
        except HTTPException as exc:
            response = exc.get_response(environ)
        return response(environ, start_response)

    def _discovery(self, request: Request) -> Response:
        return _json({
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        })

    def _jwks(self, request: Request) -> Response:
        with self._lock:
            self._state.jwks_fetches += 1
            keys = [k.as_dict(private=False) for k in self._state.keys]
        return _json({"keys": keys})

    def _authorize(self, request: Request) -> Response:
        query = request.args.to_dict()
        with self._lock:
            self._state.authorize_requests.append(query)
        if query.get("client_id") != self.client_id:
            return _json({"error": "invalid_client"}, 400)
        redirect_uri = query.get("redirect_uri", "")
        if not redirect_uri.startswith(("http://", "https://")):
            return _json({"error": "invalid_request", "error_description": "redirect_uri"}, 400)
        state = query.get("state", "")
        if self.deny:
            return _redirect(redirect_uri, {"error": "access_denied", "state": state,
                                            "error_description": "the user said no"})
        if query.get("response_type") != "code" or "openid" not in query.get("scope", "").split():
            return _redirect(redirect_uri, {"error": "invalid_request", "state": state})
        code = secrets.token_urlsafe(24)
        grant = _Grant(self.client_id, redirect_uri, query.get("nonce"), query.get("code_challenge"),
                       query.get("code_challenge_method"))
        with self._lock:
            self._state.codes[code] = grant
        return _redirect(redirect_uri, {"code": code, "state": state})

    def _token(self, request: Request) -> Response:
        form = request.form.to_dict()
        status, error, body = self._exchange(request, form)
        with self._lock:
            self._state.token_requests.append(TokenRequest(form, status, error))
        return _json(body, status)

    def _exchange(self, request: Request, form: dict[str, str]) -> tuple[int, str | None, dict[str, Any]]:
        client_id, secret = _client_credentials(request, form)
        if client_id != self.client_id or secret != self.client_secret:
            return 401, "invalid_client", {"error": "invalid_client"}
        if form.get("grant_type") != "authorization_code":
            return 400, "unsupported_grant_type", {"error": "unsupported_grant_type"}
        with self._lock:
            grant = self._state.codes.pop(form.get("code", ""), None)  # a code works once
        refusal = _refusal(grant, form)
        if refusal:
            return 400, refusal, {"error": "invalid_grant", "error_description": refusal}
        assert grant is not None
        id_token = self.mint(grant.nonce, claims=self.id_token_overrides)
        return 200, None, {"access_token": secrets.token_urlsafe(24), "token_type": "Bearer",
                           "expires_in": 300, "id_token": id_token, "scope": "openid email profile"}


def _refusal(grant: _Grant | None, form: dict[str, str]) -> str | None:
    """Why the code exchange is refused, or None."""
    if grant is None:
        return "unknown or already used code"
    if form.get("redirect_uri") != grant.redirect_uri:
        return "redirect_uri differs from the authorization request"
    if grant.code_challenge is not None:
        if grant.code_challenge_method != "S256":
            return "only S256 code challenges are accepted"
        verifier = form.get("code_verifier", "")
        if not verifier or not hmac.compare_digest(_s256(verifier), grant.code_challenge):
            return "code_verifier does not match the code_challenge"
    return None


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str | None, str | None]:
    if request.authorization and request.authorization.type == "basic":
        return request.authorization.username, request.authorization.password
    return form.get("client_id"), form.get("client_secret")


def sign(claims: dict[str, Any], key: SigningKey, *, header: dict[str, Any] | None = None,
         alg: str | None = None, hmac_secret: bytes | None = None) -> str:
    """A compact JWT of ``claims`` signed with ``key`` (its ``kid`` in the header).

    ``header`` overrides header fields (None removes one). ``alg="none"`` leaves the token
    unsigned; ``alg="HS256"`` signs it with ``hmac_secret``, by default the PEM of ``key``'s
    public half (the algorithm-confusion attack).
    """
    alg = alg or ("ES256" if isinstance(key, ECKey) else "RS256")
    head: dict[str, Any] = {"alg": alg, "typ": "JWT", "kid": key.kid, **(header or {})}
    head = {k: v for k, v in head.items() if v is not None}
    if alg == "none":
        return _compact(head, claims, b"")
    if alg == "HS256":
        secret = hmac_secret if hmac_secret is not None else key.as_pem(private=False)
        signing_input = _signing_input(head, claims)
        return _join(signing_input, hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
    if key.get("alg") not in (None, alg):  # the same key material, under another algorithm
        key = type(key).import_key({k: v for k, v in key.as_dict(private=True).items() if k != "alg"})
    return jwt.encode(head, claims, key, algorithms=[alg])


def _signing_input(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())


def _join(signing_input: str, signature: bytes) -> str:
    return signing_input + "." + b64url(signature)


def _compact(header: dict[str, Any], claims: dict[str, Any], signature: bytes) -> str:
    return _join(_signing_input(header, claims), signature)


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json",
                    headers={"Cache-Control": "no-store"})


def _redirect(uri: str, params: dict[str, str]) -> Response:
    separator = "&" if "?" in uri else "?"
    return Response(status=302, headers={"Location": uri + separator + urlencode(params)})
