"""The ``flask`` CLI: databases, tenants, the message plane, operators (``flask --app web``).

The groups are Flask ``AppGroup``s so every command runs in an application context, under
``flask`` and under ``app.test_cli_runner()`` alike.
"""
from __future__ import annotations

import getpass
import os
import sys
import uuid

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from domain.db import migrate
from domain.errors import DomainError
from domain.identity import services as identity
from domain.messaging import relay
from domain.tenancy import migrations
from domain.tenancy import queries as tenancy
from workers.publisher import publish, run_group


def _provider():  # type: ignore[no-untyped-def]
    return current_app.extensions["allotment.provider"]


def _settings():  # type: ignore[no-untyped-def]
    return current_app.extensions["allotment.settings"]


@click.group("db", cls=AppGroup)
def db_cli() -> None:
    """Databases and their migrations."""


@db_cli.command("upgrade")
def upgrade() -> None:
    """Create and upgrade the management and trial databases."""
    s = _settings()
    for name, result in migrate.prepare(s.database_url, s.trial_database_url, s.tenant_db_role).items():
        click.echo(f"{name}: {result.before} -> {result.after} ({result.duration_ms} ms)")


@db_cli.command("upgrade-tenants")
@click.option("--timeout", default=3600.0, help="Seconds to wait for every database.")
def upgrade_tenants(timeout: float) -> None:
    """Upgrade every tenant database as a Celery group on the tenancy queue."""
    databases = _provider().tenant_databases()
    results = run_group(current_app.extensions["allotment.celery"],
                        "tasks.tenancy.migrate_tenant_database", [[d] for d in databases], timeout)
    failed = 0
    for database, result in zip(databases, results, strict=True):
        if isinstance(result, dict):
            click.echo(f"{database}: {result['status']} {result['revision_before']} -> "
                       f"{result['revision_after']} {result['error'] or ''}".rstrip())
            failed += result["status"] == "failed"
        else:
            click.echo(f"{database}: failed {result!r}")
            failed += 1
    click.echo(f"{len(databases) - failed} of {len(databases)} databases at head")
    if failed:
        sys.exit(1)


@click.group("tenants", cls=AppGroup)
def tenants_cli() -> None:
    """Tenants."""


@tenants_cli.command("list")
def list_tenants() -> None:
    """Every tenant with its status, database and schema revision."""
    provider = _provider()
    with provider.management() as session:
        rows = tenancy.list_tenants(session)
    # revision_of answers None for an unreachable database instead of failing the listing.
    revisions = {key: migrations.revision_of(provider.url_of(key)) for key in provider.tenant_databases()}
    for row in rows:
        click.echo(f"{row.slug}\t{row.status}\t{row.database}\t{revisions.get(row.db_key)}")


@click.group("messages", cls=AppGroup)
def messages_cli() -> None:
    """The message plane: dead and overdue deliveries."""


@messages_cli.command("list")
@click.option("--state", type=click.Choice(["dead", "overdue"]), default="dead")
def list_messages(state: str) -> None:
    """Dead or overdue deliveries across every database."""
    listing = relay.list_all(_provider(), state)
    for database in listing.unreachable:
        click.echo(f"{database}\tunreachable", err=True)
    for row in listing.rows:
        click.echo(f"{row.database}\t{row.id}\t{row.handler}\tattempts={row.attempts}\t"
                   f"{row.last_error or ''}".rstrip())


@messages_cli.command("retry")
@click.argument("database")
@click.argument("message_id", type=click.UUID)
def retry_message(database: str, message_id: uuid.UUID) -> None:
    """Revive a dead delivery and send it again."""
    try:
        envelope = relay.revive_in(_provider(), database, message_id,
                                   _settings().message_lease_seconds)
    except DomainError as exc:
        raise click.ClickException(f"{exc.field}: {exc.reason}") from None
    publish(current_app.extensions["allotment.celery"], [envelope])
    click.echo(f"re-sent {envelope.id}")


@click.group("users", cls=AppGroup)
def users_cli() -> None:
    """Accounts."""


@users_cli.command("create-operator")
@click.argument("email")
@click.option("--name", default="Operator")
def create_operator(email: str, name: str) -> None:
    """Create a platform operator (password from ALLOTMENT_OPERATOR_PASSWORD or a prompt)."""
    password = os.environ.get("ALLOTMENT_OPERATOR_PASSWORD") or getpass.getpass("Password: ")
    if len(password) < 10:
        raise click.ClickException("password: must be at least 10 characters")
    with _provider().management() as session:
        try:
            identity.create_user(session, email=email, name=name,
                                 password_hash=identity.hash_password(password), is_operator=True)
        except DomainError as exc:
            raise click.ClickException(f"{exc.field}: {exc.reason}") from None
        session.commit()
    click.echo(f"operator {email} created")


def init_app(app: Flask) -> None:
    """Register the command groups."""
    for group in (db_cli, tenants_cli, messages_cli, users_cli):
        app.cli.add_command(group)
