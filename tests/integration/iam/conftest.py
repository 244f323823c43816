"""Fixtures of the IAM suites: a client per module and a platform operator."""
from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from domain.db.provider import DataProvider
from tests.support import tenants
from tests.support.tenants import Account


@pytest.fixture(scope="module")
def api(app: Flask) -> FlaskClient:
    """A test client shared by a module's fixtures and tests (JSON calls carry their token)."""
    return app.test_client()


@pytest.fixture(scope="module")
def operator(provider: DataProvider) -> Account:
    """A platform operator (an account of no tenant)."""
    return tenants.create_account(provider, operator=True)


@pytest.fixture(scope="module")
def operator_token(api: FlaskClient, operator: Account) -> str:
    """An operator's access token (issued for no tenant)."""
    return tenants.access_token(api, operator)

