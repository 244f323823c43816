"""The ``flask db`` and ``flask tenants`` commands on real databases."""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from config.settings import Settings, database_name, database_on
from domain.db import migrate
from tests.integration.db.conftest import Isolated, MakeDatabase, Tenants, placement_label
from tests.support.apps import web_app
from tests.support.services import Services


@pytest.fixture
def fresh_app(services: Services, settings: Settings, tmp_path: Path) -> Iterator[Flask]:
    """An app configured for management and trial databases that do not exist yet."""
    name = f"allot_cli_{secrets.token_hex(4)}"
    fresh = settings.model_copy(update={
        "database_url": database_on(services.server_url, name),
        "trial_database_url": database_on(services.server_url, f"{name}_trial"),
        "var_dir": tmp_path})
    try:
        with web_app(fresh) as app:
            yield app
    finally:
        migrate.drop_database(fresh.database_url)
        migrate.drop_database(fresh.trial_database_url)


def test_db_upgrade_creates_and_migrates_both_databases(fresh_app: Flask) -> None:
    settings = fresh_app.extensions["allotment.settings"]
    result = fresh_app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert migrate.current_revision(settings.database_url) == migrate.head("management")
    assert migrate.current_revision(settings.trial_database_url) == migrate.head("tenant")
    assert f"management: None -> {migrate.head('management')}" in result.output
    assert f"trial: None -> {migrate.head('tenant')}" in result.output


def test_tenants_list_shows_database_and_revision(isolated: Isolated,
                                                  make_database: MakeDatabase) -> None:
    tenants = Tenants(isolated.provider)
    trial, url = tenants.trial(), make_database("tenant")
    dedicated = tenants.dedicated(url)
    result = isolated.app.test_cli_runner().invoke(args=["tenants", "list"])
    assert result.exit_code == 0, result.output
    head = migrate.head("tenant")
    assert sorted(result.output.splitlines()) == sorted([
        f"{tenants.slugs[trial]}\ttrial\ttrial\t{head}",
        f"{tenants.slugs[dedicated]}\tdedicated\t"
        f"{database_name(url)}@{placement_label(isolated.provider)}\t{head}"])
