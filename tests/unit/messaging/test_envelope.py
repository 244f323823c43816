"""The envelope's task argument: every field, and back again."""
from __future__ import annotations

import dataclasses
import time
import uuid

from domain.messaging.outbox import Envelope


def test_the_task_argument_holds_every_field_and_rebuilds_the_envelope() -> None:
    envelope = Envelope(
        id=str(uuid.uuid4()), event_id=str(uuid.uuid4()), type="tenancy.ProvisionTenant", version=1,
        handler="tenancy.provision_tenant", payload={"signup_id": str(uuid.uuid4()), "nested": {"a": [1]}},
        origin="management", tenant_id=None, correlation_id="req-1", attempt=2, sent_at=time.time())
    argument = envelope.as_dict()
    assert argument == dataclasses.asdict(envelope)
    assert Envelope.from_dict(argument) == envelope
