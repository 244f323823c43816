"""Password hashing: argon2id with the configured profile; a stored hash verifies with the
parameters it carries, whatever the profile is now."""
from __future__ import annotations

from collections.abc import Iterator
from typing import get_args

import pytest
from argon2 import extract_parameters, profiles

from config.settings import Settings
from domain.identity import services


@pytest.fixture(autouse=True)
def restore_profile() -> Iterator[None]:
    """Put the process's hasher back as it was before the test."""
    before = services._hasher
    yield
    services._hasher = before
    services._dummy_hash.cache_clear()


@pytest.mark.parametrize("name", ["rfc9106-low-memory", "cheapest"])
def test_a_profile_hashes_with_its_parameters_and_verifies(name: str) -> None:
    services.use_password_profile(name)
    stored = services.hash_password("correct horse")
    parameters = extract_parameters(stored)
    expected = services.PASSWORD_PROFILES[name]
    assert (parameters.type, parameters.time_cost, parameters.memory_cost, parameters.parallelism) == (
        expected.type, expected.time_cost, expected.memory_cost, expected.parallelism)
    assert services._password_matches(stored, "correct horse")
    assert not services._password_matches(stored, "wrong horse")


def test_the_setting_offers_exactly_the_profiles_the_hasher_knows() -> None:
    offered = get_args(Settings.model_fields["password_hash_profile"].annotation)
    assert set(offered) == set(services.PASSWORD_PROFILES)


def test_the_default_is_rfc_9106_low_memory() -> None:
    assert services.PASSWORD_PROFILES["rfc9106-low-memory"] == profiles.RFC_9106_LOW_MEMORY
    assert profiles.RFC_9106_LOW_MEMORY.memory_cost == 65536 and profiles.RFC_9106_LOW_MEMORY.time_cost == 3


def test_a_hash_made_under_another_profile_still_verifies() -> None:
    services.use_password_profile("cheapest")
    cheap = services.hash_password("old password")
    services.use_password_profile("rfc9106-low-memory")
    assert services._password_matches(cheap, "old password")
    assert not services._password_matches(cheap, "other")
    assert not services._password_matches(None, "old password")
