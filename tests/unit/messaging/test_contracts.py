"""Versioned contracts: a consumer accepts the current and the previous version, nothing else."""
from __future__ import annotations

from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from domain.messaging.contracts import Contract


class GreetV1(Contract):
    """Version 1: a single name."""

    message_type: ClassVar[str] = "test.Greet"

    name: str


class GreetV2(Contract):
    """Version 2: the name split in two."""

    message_type: ClassVar[str] = "test.Greet"
    version: ClassVar[int] = 2
    previous: ClassVar[type[Contract] | None] = GreetV1

    given_name: str
    family_name: str

    @classmethod
    def upgrade(cls, old: Contract) -> Contract:
        """Split the old single name."""
        assert isinstance(old, GreetV1)
        given, _, family = old.name.partition(" ")
        return cls(given_name=given, family_name=family)


class GreetV3(GreetV2):
    """Version 3: version 2's fields and a title; its previous version is 2, so 1 is refused."""

    version: ClassVar[int] = 3
    previous: ClassVar[type[Contract] | None] = GreetV2

    title: str = ""

    @classmethod
    def upgrade(cls, old: Contract) -> Contract:
        """Version 2 plus an empty title."""
        return cls(**old.model_dump())


def test_the_current_version_is_parsed_as_is() -> None:
    assert GreetV2.parse(2, {"given_name": "Ada", "family_name": "Lovelace"}) == \
        GreetV2(given_name="Ada", family_name="Lovelace")


def test_the_previous_version_is_upgraded() -> None:
    message = GreetV2.parse(1, {"name": "Ada Lovelace"})
    assert message == GreetV2(given_name="Ada", family_name="Lovelace")
    newer = GreetV3.parse(2, {"given_name": "Ada", "family_name": "Lovelace"})
    assert newer == GreetV3(given_name="Ada", family_name="Lovelace", title="")


@pytest.mark.parametrize(("contract", "version", "payload"), [
    (GreetV2, 3, {"given_name": "Ada", "family_name": "Lovelace", "title": "Countess"}),  # newer
    (GreetV3, 1, {"name": "Ada Lovelace"}),    # older than the previous version
    (GreetV1, 0, {"name": "Ada"}),             # a version 1 contract has no previous
    (GreetV1, 2, {"given_name": "Ada", "family_name": "Lovelace"}),
])
def test_other_versions_are_refused(contract: type[Contract], version: int, payload: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"test\.Greet v\d is not accepted"):
        contract.parse(version, payload)


@pytest.mark.parametrize(("version", "payload"), [
    (2, {"given_name": "Ada"}),                                       # missing field
    (2, {"given_name": "Ada", "family_name": "L", "extra": "no"}),    # unknown field
    (1, {"given_name": "Ada", "family_name": "Lovelace"}),            # v2 payload labelled v1
])
def test_a_payload_that_does_not_match_its_version_is_refused(version: int, payload: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GreetV2.parse(version, payload)


def test_a_contract_without_a_previous_version_cannot_upgrade() -> None:
    with pytest.raises(NotImplementedError):
        GreetV1.upgrade(GreetV1(name="Ada"))


def test_messages_are_immutable() -> None:
    message = GreetV1(name="Ada")
    with pytest.raises(ValidationError):
        message.name = "Grace"  # type: ignore[misc]
