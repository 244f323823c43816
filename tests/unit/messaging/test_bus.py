"""The bus: a command goes to its one handler, an event to every subscriber."""
from __future__ import annotations

from typing import ClassVar, Literal

import pytest

from domain.messaging import bus
from domain.messaging.contracts import Contract, tenancy


class DoThingV1(Contract):
    """A test command."""

    message_type: ClassVar[str] = "test.DoThing"
    kind: ClassVar[Literal["command", "event"]] = "command"


class ThingDoneV1(Contract):
    """A test event."""

    message_type: ClassVar[str] = "test.ThingDone"


def test_a_command_goes_to_its_one_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(bus.COMMAND_HANDLERS, DoThingV1.message_type, "things.do_thing")
    assert bus.handlers_for(DoThingV1()) == ("things.do_thing",)


def test_a_command_without_a_handler_is_refused() -> None:
    # Recording it would write a message nobody ever completes.
    with pytest.raises(KeyError):
        bus.handlers_for(DoThingV1())


def test_an_event_goes_to_every_subscriber(monkeypatch: pytest.MonkeyPatch) -> None:
    subscribers = ("notifications.tell_admin", "billing.open_account", "assets.make_space")
    monkeypatch.setitem(bus.SUBSCRIBERS, ThingDoneV1.message_type, subscribers)
    assert bus.handlers_for(ThingDoneV1()) == subscribers


def test_an_event_nobody_subscribes_to_goes_nowhere() -> None:
    assert bus.handlers_for(ThingDoneV1()) == ()


def test_the_handler_runs_as_the_task_of_its_context() -> None:
    assert bus.task_name("notifications.record_welcome_notice") == "tasks.notifications.record_welcome_notice"


def test_the_tables_agree_with_the_contracts() -> None:
    for message_type, handler in bus.COMMAND_HANDLERS.items():
        assert bus.CONTRACTS[message_type].kind == "command", handler
    for message_type in bus.SUBSCRIBERS:
        assert bus.CONTRACTS[message_type].kind == "event", message_type
    assert bus.CONTRACTS[tenancy.ProvisionTenantV1.message_type] is tenancy.ProvisionTenantV1
