"""The ID-token verifier on its own: signature, claims, nonce, and how it caches and refetches
the provider's keys (a fake provider answers its fetches, fake clocks tell the time)."""
from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from domain.identity.errors import BadExternalIdentity
from domain.identity.oidc import ExternalClaims, IdTokenVerifier, ProviderUnavailable
from tests.support.oidc_provider import SigningKey, new_ec_key, new_rsa_key, sign

ISSUER = "https://idp.example.com/"
CLIENT = "allotment-client"
NONCE = "nonce-0123456789"
NOW = 1_900_000_000.0


@dataclass
class FakeProvider:
    """Answers the verifier's fetches from memory and counts them."""

    keys: list[SigningKey] = field(default_factory=lambda: [new_rsa_key()])
    issuer: str = ISSUER
    extra_jwks: list[dict[str, Any]] = field(default_factory=list)
    down: bool = False
    fetched: list[str] = field(default_factory=list)

    def fetch(self, url: str) -> Mapping[str, Any]:
        self.fetched.append(url)
        if self.down:
            raise ProviderUnavailable(f"cannot fetch {url}")
        if url == "https://idp.example.com/.well-known/openid-configuration":
            return {"issuer": self.issuer, "jwks_uri": "https://idp.example.com/jwks"}
        if url == "https://idp.example.com/jwks":
            return {"keys": [k.as_dict(private=False) for k in self.keys] + self.extra_jwks}
        raise AssertionError(f"unexpected fetch of {url}")

    @property
    def jwks_fetches(self) -> int:
        return sum(1 for url in self.fetched if url.endswith("/jwks"))


@dataclass
class Clock:
    """Wall and monotonic time the test moves by hand."""

    now: float = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def idp() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(idp: FakeProvider, clock: Clock) -> IdTokenVerifier:
    return IdTokenVerifier(ISSUER, CLIENT, cache_seconds=600, fetch=idp.fetch, clock=clock,
                           monotonic=clock)


def claims(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"iss": ISSUER, "sub": "auth0|123", "aud": CLIENT, "iat": int(NOW),
                            "exp": int(NOW) + 300, "nonce": NONCE, "email": "Olive@Example.com",
                            "email_verified": True, "name": "Olive"}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def token(idp: FakeProvider, key: SigningKey | None = None, **overrides: Any) -> str:
    return sign(claims(**overrides), key or idp.keys[0])


def refused(verifier: IdTokenVerifier, id_token: str, nonce: str | None = NONCE) -> str:
    with pytest.raises(BadExternalIdentity) as caught:
        verifier.verify(id_token, nonce)
    assert caught.value.status == 401 and caught.value.field == "id_token"
    return caught.value.reason


def test_a_valid_token_gives_the_claims(verifier: IdTokenVerifier, idp: FakeProvider) -> None:
    assert verifier.verify(token(idp), NONCE) == ExternalClaims(
        issuer=ISSUER, subject="auth0|123", email="Olive@Example.com", email_verified=True,
        name="Olive")


def test_an_es256_token_is_accepted(verifier: IdTokenVerifier, idp: FakeProvider) -> None:
    idp.keys.append(new_ec_key())
    assert verifier.verify(token(idp, idp.keys[1]), NONCE).subject == "auth0|123"


@pytest.mark.parametrize(("verified", "expected"), [(True, True), ("true", True), (False, False),
                                                    ("false", False), (1, False), (None, False)])
def test_only_a_true_email_verified_counts(verifier: IdTokenVerifier, idp: FakeProvider,
                                           verified: object, expected: bool) -> None:
    assert verifier.verify(token(idp, email_verified=verified), NONCE).email_verified is expected


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_unsigned_and_shared_secret_tokens_are_refused(verifier: IdTokenVerifier, idp: FakeProvider,
                                                       alg: str) -> None:
    forged = sign(claims(), idp.keys[0], alg=alg)
    assert alg in refused(verifier, forged)


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256"])
def test_other_rsa_algorithms_are_refused(verifier: IdTokenVerifier, idp: FakeProvider, alg: str) -> None:
    assert alg in refused(verifier, sign(claims(), idp.keys[0], alg=alg))


def test_a_published_shared_secret_cannot_sign(verifier: IdTokenVerifier, idp: FakeProvider) -> None:
    # Even a provider that publishes an "oct" key does not make HS256 acceptable.
    idp.extra_jwks.append({"kty": "oct", "kid": "shared", "k": "c2VjcmV0"})  # b"secret"
    assert "HS256" in refused(verifier, sign(claims(), idp.keys[0], alg="HS256", hmac_secret=b"secret",
                                             header={"kid": "shared"}))


def test_a_token_signed_by_another_key_with_the_same_kid_is_refused(
        verifier: IdTokenVerifier, idp: FakeProvider) -> None:
    impostor = new_rsa_key(kid=idp.keys[0].kid)
    assert "signature" in refused(verifier, token(idp, impostor))


def test_an_es256_header_on_an_rsa_kid_is_refused(verifier: IdTokenVerifier, idp: FakeProvider) -> None:
    attacker = new_ec_key(kid=idp.keys[0].kid)
    assert "no ES256 key" in refused(verifier, token(idp, attacker))


@pytest.mark.parametrize("tampered", ["", "abc", "a.b.c", "x" * 20_000, "..", "e30.e30.e30"])
def test_malformed_tokens_are_refused(verifier: IdTokenVerifier, tampered: str) -> None:
    refused(verifier, tampered)


def test_a_tampered_payload_is_refused(verifier: IdTokenVerifier, idp: FakeProvider) -> None:
    header, _, signature = token(idp).split(".")
    other = token(idp, sub="auth0|someone-else").split(".")[1]
    assert "signature" in refused(verifier, f"{header}.{other}.{signature}")


@pytest.mark.parametrize(("overrides", "words"), [
    ({"iss": "https://evil.example.com/"}, "issued by"),
    ({"iss": None}, "issued by"),
    ({"aud": "another-client"}, "aud"),
    ({"aud": None}, "aud"),
    ({"aud": [CLIENT, "another-client"]}, "azp"),
    ({"aud": [CLIENT, "another-client"], "azp": "another-client"}, "azp"),
    ({"azp": "another-client"}, "azp"),
    ({"exp": int(NOW) - 61}, "expired"),
    ({"exp": None}, "exp"),
    ({"exp": "tomorrow"}, "exp"),
    ({"iat": None}, "iat"),
    ({"iat": int(NOW) + 120}, "future"),
    ({"nbf": int(NOW) + 120}, "not valid yet"),
    ({"nonce": "another-nonce"}, "nonce"),
    ({"nonce": None}, "nonce"),
    ({"sub": None}, "sub"),
    ({"sub": ""}, "sub"),
    ({"sub": "x" * 256}, "sub"),
])
def test_claims_that_do_not_hold_are_refused(verifier: IdTokenVerifier, idp: FakeProvider,
                                             overrides: dict[str, Any], words: str) -> None:
    assert words in refused(verifier, token(idp, **overrides))


@pytest.mark.parametrize("overrides", [
    {"aud": [CLIENT, "another-client"], "azp": CLIENT},
    {"aud": [CLIENT]},
    {"exp": int(NOW) - 59},            # within the leeway
    {"iat": int(NOW) + 59, "nbf": int(NOW) + 59},
])
def test_claims_within_the_rules_are_accepted(verifier: IdTokenVerifier, idp: FakeProvider,
                                              overrides: dict[str, Any]) -> None:
    assert verifier.verify(token(idp, **overrides), NONCE).subject == "auth0|123"


@pytest.mark.parametrize("nonce", [None, ""])
def test_a_nonce_is_required(verifier: IdTokenVerifier, idp: FakeProvider, nonce: str | None) -> None:
    assert "nonce" in refused(verifier, token(idp), nonce)
    assert idp.fetched == []


def test_the_issuer_may_be_configured_without_its_trailing_slash(idp: FakeProvider, clock: Clock) -> None:
    checker = IdTokenVerifier(ISSUER.rstrip("/"), CLIENT, fetch=idp.fetch, clock=clock, monotonic=clock)
    assert checker.verify(token(idp), NONCE).issuer == ISSUER


def test_a_discovery_document_naming_another_issuer_is_refused(idp: FakeProvider,
                                                              verifier: IdTokenVerifier) -> None:
    idp.issuer = "https://evil.example.com/"
    with pytest.raises(ProviderUnavailable) as caught:
        verifier.verify(token(idp), NONCE)
    assert caught.value.status == 503


def test_keys_are_cached_for_the_configured_time(verifier: IdTokenVerifier, idp: FakeProvider,
                                                 clock: Clock) -> None:
    for _ in range(3):
        verifier.verify(token(idp), NONCE)
    assert idp.jwks_fetches == 1
    clock.now += 601
    verifier.verify(token(idp, iat=int(clock.now), exp=int(clock.now) + 60), NONCE)
    assert idp.jwks_fetches == 2


def test_a_rotated_key_is_fetched_once_and_the_dropped_one_is_refused(
        verifier: IdTokenVerifier, idp: FakeProvider) -> None:
    old = idp.keys[0]
    verifier.verify(token(idp), NONCE)
    idp.keys = [new_rsa_key()]
    assert verifier.verify(token(idp), NONCE).subject == "auth0|123"
    assert idp.jwks_fetches == 2
    assert "no RS256 key" in refused(verifier, token(idp, old))
    assert idp.jwks_fetches == 2  # the refetch for the old kid waits refetch_interval


def made_up(idp: FakeProvider, kid: str) -> str:
    return sign(claims(), idp.keys[0], header={"kid": kid})


def test_a_flood_of_made_up_kids_refetches_at_most_once_a_second(
        verifier: IdTokenVerifier, idp: FakeProvider, clock: Clock) -> None:
    verifier.verify(token(idp), NONCE)
    for _ in range(20):
        refused(verifier, made_up(idp, secrets.token_hex(6)))
    assert idp.jwks_fetches == 2
    clock.now += 0.5
    refused(verifier, made_up(idp, "another"))
    assert idp.jwks_fetches == 2
    clock.now += 0.6
    refused(verifier, made_up(idp, "another"))
    assert idp.jwks_fetches == 3


def test_one_unknown_kid_refetches_at_most_once_per_interval(
        verifier: IdTokenVerifier, idp: FakeProvider, clock: Clock) -> None:
    verifier.verify(token(idp), NONCE)
    refused(verifier, made_up(idp, "a"))
    assert idp.jwks_fetches == 2
    clock.now += 2
    refused(verifier, made_up(idp, "a"))
    assert idp.jwks_fetches == 2  # "a" asked 2 s ago
    refused(verifier, made_up(idp, "b"))
    assert idp.jwks_fetches == 3  # another kid, more than a second after the last refetch
    clock.now += 8.5
    refused(verifier, made_up(idp, "a"))
    assert idp.jwks_fetches == 4  # "a" asked 10.5 s ago


def test_a_rotation_right_after_a_flood_is_picked_up_a_second_later(
        verifier: IdTokenVerifier, idp: FakeProvider, clock: Clock) -> None:
    verifier.verify(token(idp), NONCE)
    refused(verifier, made_up(idp, "flood"))
    idp.keys.append(new_rsa_key())
    clock.now += 1
    assert verifier.verify(token(idp, idp.keys[1]), NONCE).subject == "auth0|123"


def test_without_a_kid_the_only_key_of_its_type_is_used(verifier: IdTokenVerifier, idp: FakeProvider,
                                                        clock: Clock) -> None:
    assert verifier.verify(sign(claims(), idp.keys[0], header={"kid": None}), NONCE).subject
    idp.keys.append(new_rsa_key())
    verifier_two = IdTokenVerifier(ISSUER, CLIENT, fetch=idp.fetch, clock=clock, monotonic=clock)
    assert "several keys" in refused(verifier_two, sign(claims(), idp.keys[0], header={"kid": None}))


def test_encryption_keys_are_not_used_to_verify(verifier: IdTokenVerifier, idp: FakeProvider) -> None:
    enc = new_rsa_key()
    idp.extra_jwks.append({**enc.as_dict(private=False), "use": "enc", "alg": "RSA-OAEP"})
    assert "no RS256 key" in refused(verifier, token(idp, enc))


def test_cached_keys_serve_while_the_provider_is_down(verifier: IdTokenVerifier, idp: FakeProvider,
                                                      clock: Clock) -> None:
    verifier.verify(token(idp), NONCE)
    idp.down = True
    clock.now += 601
    fresh = token(idp, iat=int(clock.now), exp=int(clock.now) + 60)
    assert verifier.verify(fresh, NONCE).subject == "auth0|123"
    fetched = len(idp.fetched)
    verifier.verify(fresh, NONCE)
    assert len(idp.fetched) == fetched  # no retry on every request


def test_no_keys_and_the_provider_down_is_unavailable(verifier: IdTokenVerifier, idp: FakeProvider) -> None:
    idp.down = True
    with pytest.raises(ProviderUnavailable):
        verifier.verify(token(idp), NONCE)
