"""The access mirror: each web process keeps revoked sessions and IAM versions fed by Redis
pub/sub, drained at the start of every request (domain.identity.mirror)."""
from __future__ import annotations

from flask.testing import FlaskClient
from redis import Redis

from domain.identity.revocation import session_key
from tests.integration.identity.conftest import SESSIONS, Org, sign_in
from tests.integration.web.helpers import assert_refused

ME = "/api/v1/iam/me"


def test_a_revocation_reaches_another_process_over_the_channel(
        client: FlaskClient, other_client: FlaskClient, org: Org, broker_redis: Redis) -> None:
    tokens = sign_in(client, org.employee)
    assert other_client.get(ME, headers=tokens.bearer).status_code == 200  # its mirror is live
    assert client.delete(f"{SESSIONS}/current", headers=tokens.bearer).status_code == 200
    # Remove the key: only the published change can tell the other process now.
    broker_redis.delete(session_key(tokens.session_id))
    assert_refused(other_client.get(ME, headers=tokens.bearer), 401, "Authorization")


def test_a_dropped_subscription_is_noticed_and_the_state_reloaded(
        client: FlaskClient, other_client: FlaskClient, org: Org, broker_redis: Redis) -> None:
    tokens, valid = sign_in(client, org.employee), sign_in(client, org.employee)
    assert other_client.get(ME, headers=tokens.bearer).status_code == 200
    # Redis drops every subscriber (as it does to one whose buffer overflows)...
    assert broker_redis.client_kill_filter(_type="pubsub") >= 1
    # ...and a revocation is published while nobody listens: only the key records it.
    assert client.delete(f"{SESSIONS}/current", headers=tokens.bearer).status_code == 200
    assert broker_redis.exists(session_key(tokens.session_id)) == 1
    # The next request notices the lost subscription, resubscribes and reloads the keys.
    assert_refused(other_client.get(ME, headers=tokens.bearer), 401, "Authorization")
    assert other_client.get(ME, headers=valid.bearer).status_code == 200
