"""The ``flask`` CLI: databases, tenants, the message plane, operators (``flask --app web``).

The groups are Flask ``AppGroup``s so every command runs in an application context, under
``flask`` and under ``app.test_cli_runner()`` alike.
"""
from __future__ import annotations

import getpass
import os
import sys
import time
import uuid
from collections import Counter

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from config.celery import queue_for_task
from domain.db import migrate
from domain.db.provider import DataProvider
from domain.errors import DomainError
from domain.identity import services as identity
from domain.identity import sessions
from domain.messaging import outbox, relay
from domain.tenancy import export, migrations, promotion
from domain.tenancy import queries as tenancy
from web.auth import revoke_sessions
from web.storage import send_export, storage
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
    _migrate_all(timeout)


MIGRATE_TASK = "tasks.tenancy.migrate_tenant_database"


def _migrate_all(timeout: float) -> None:
    """Migrate-all: at most MIGRATION_CONCURRENCY databases at once, one run at a time;
    a line per database and a summary, exit status 1 when any database failed."""
    provider = _provider()
    try:
        with migrations.exclusive_run(provider):
            databases = provider.tenant_databases()
            results = run_group(current_app.extensions["allotment.celery"], MIGRATE_TASK,
                                [[d] for d in databases], timeout,
                                limit=_settings().migration_concurrency)
    except DomainError as exc:
        raise click.ClickException(f"{exc.field}: {exc.reason}") from None
    counts = Counter(_report(database, result) for database, result in zip(databases, results, strict=True))
    failed = counts["failed"]
    click.echo(f"{counts['upgraded']} upgraded, {counts['skipped']} skipped, {failed} failed: "
               f"{len(databases) - failed} of {len(databases)} databases at head")
    if failed:
        sys.exit(1)


def _report(database: str, result: object) -> str:
    """Print one database's line of a migrate-all run; return its status."""
    if not isinstance(result, dict):  # the task itself failed or did not finish in time
        click.echo(f"{database}: failed {type(result).__name__}: {result}")
        return "failed"
    click.echo(f"{database}: {result['status']} {result['revision_before']} -> {result['revision_after']} "
               f"({result['duration_ms']} ms) {result['error'] or ''}".rstrip())
    return str(result["status"])


@click.group("tenants", cls=AppGroup)
def tenants_cli() -> None:
    """Tenants."""


@tenants_cli.command("migrate-all")
@click.option("--timeout", default=3600.0, help="Seconds to wait for every database.")
def migrate_all(timeout: float) -> None:
    """Upgrade every tenant database (the same as ``db upgrade-tenants``)."""
    _migrate_all(timeout)


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


@tenants_cli.command("promote")
@click.argument("slug")
@click.option("--timeout", default=3600.0, help="Seconds to follow the promotion.")
def promote(slug: str, timeout: float) -> None:
    """Promote a trial tenant to a database of its own (or re-run its promotion), with a
    progress bar; exit 1 if it fails."""
    provider, celery = _provider(), current_app.extensions["allotment.celery"]
    with provider.management() as session:
        tenant_id = tenancy.tenant_id_by_slug(session, slug)
        if tenant_id is None:
            raise click.ClickException(f"slug: no tenant {slug!r}")
        try:
            promotion_id = promotion.request_promotion(session, tenant_id, reason="operator")
        except DomainError as exc:
            raise click.ClickException(f"{exc.field}: {exc.reason}") from None
        pending = outbox.take_pending(session)
        session.commit()
    if pending:
        publish(celery, pending)
    else:  # already recorded: run it again (a run in progress answers at once and goes on)
        celery.send_task("tasks.tenancy.resume_promotion", args=[str(promotion_id)],
                         queue=queue_for_task("tasks.tenancy.resume_promotion"))
    progress = _follow(provider, promotion_id, slug, timeout)
    held = f", writes held {progress.write_stall_ms} ms" if progress.write_stall_ms is not None else ""
    failure = f": {progress.error}" if progress.error else ""
    click.echo(f"{slug}: {progress.status} at {progress.step} ({progress.rows_copied} rows{held}){failure}")
    if progress.status != "completed":
        sys.exit(1)


def _follow(provider: DataProvider, promotion_id: uuid.UUID, slug: str,
            timeout: float) -> promotion.Progress:
    """Draw the promotion's progress until it finishes or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    with click.progressbar(length=100, label=f"promoting {slug}", show_pos=True) as bar:
        while True:
            with provider.management() as session:
                progress = promotion.progress(session, promotion_id)
            bar.label = f"promoting {slug}: {progress.step}"
            bar.update(progress.percent - bar.pos)
            if progress.finished or time.monotonic() > deadline:
                return progress
            time.sleep(0.5)  # the pace of a progress bar, not a stand-in for a condition


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


def _operator_password() -> str:
    """The password an operator gives a command: ALLOTMENT_OPERATOR_PASSWORD, or a prompt."""
    password = os.environ.get("ALLOTMENT_OPERATOR_PASSWORD") or getpass.getpass("Password: ")
    if len(password) < 10:
        raise click.ClickException("password: must be at least 10 characters")
    return password


@users_cli.command("create-operator")
@click.argument("email")
@click.option("--name", default="Operator")
def create_operator(email: str, name: str) -> None:
    """Create a platform operator (password from ALLOTMENT_OPERATOR_PASSWORD or a prompt)."""
    password = _operator_password()
    with _provider().management() as session:
        try:
            identity.create_user(session, email=email, name=name,
                                 password_hash=identity.hash_password(password), is_operator=True)
        except DomainError as exc:
            raise click.ClickException(f"{exc.field}: {exc.reason}") from None
        session.commit()
    click.echo(f"operator {email} created")


@users_cli.command("set-password")
@click.argument("email")
def set_password(email: str) -> None:
    """Set an account's password (from ALLOTMENT_OPERATOR_PASSWORD or a prompt) and end every
    session of it: how a platform operator who lost theirs gets back in (operators get no
    password reset link by email)."""
    password = _operator_password()
    with _provider().management() as session:
        user = identity.user_by_email(session, email)
        if user is None:
            raise click.ClickException("email: no account has this address")
        identity.set_password(session, user.id, password)
        ended = sessions.revoke_user(session, user.id, "password set by an operator")
        revoke_sessions(ended)  # before the commit, as the web flows do
        session.commit()
    click.echo(f"password of {user.email} set; {len(ended)} sessions ended")


def init_app(app: Flask) -> None:
    """Register the command groups."""
    for group in (db_cli, tenants_cli, messages_cli, users_cli):
        app.cli.add_command(group)


# -- tenant export and offboarding -----------------------------------------------------------
_FOLLOW = click.option("--wait/--no-wait", default=True, help="Follow the job until it ends.")
_TIMEOUT = click.option("--timeout", default=3600.0, help="Seconds to follow the job.")


@tenants_cli.command("export")
@click.argument("slug")
@_FOLLOW
@_TIMEOUT
def export_tenant(slug: str, wait: bool, timeout: float) -> None:
    """Export every row of a tenant into an archive on the storage; print where it is."""
    _run_export_job(slug, "export", wait, timeout)


@tenants_cli.command("offboard")
@click.argument("slug")
@click.option("--yes", is_flag=True, help="Confirm: the tenant's data is deleted after the export.")
@_FOLLOW
@_TIMEOUT
def offboard_tenant(slug: str, yes: bool, wait: bool, timeout: float) -> None:
    """Export a tenant, then drop its database or purge its trial rows, and delete it."""
    if not yes:
        raise click.ClickException("offboarding deletes the tenant's data; add --yes to confirm")
    _run_export_job(slug, "offboard", wait, timeout)


def _run_export_job(slug: str, kind: str, wait: bool, timeout: float) -> None:
    """Record the job, send it to the tenancy workers and (with --wait) follow it to its end."""
    provider = _provider()
    with provider.management() as session:
        tenant_id = tenancy.tenant_id_by_slug(session, slug)
        if tenant_id is None:
            raise click.ClickException(f"slug: no tenant {slug!r}")
        try:
            export_id = (export.request_offboard(session, tenant_id, confirm_slug=slug) if kind == "offboard"
                         else export.request_export(session, tenant_id))
        except DomainError as exc:
            raise click.ClickException(f"{exc.field}: {exc.reason}") from None
        session.commit()
    send_export(export_id, kind)
    click.echo(f"{kind} {export_id} of {slug} recorded")
    if not wait:
        return
    status = _follow_export(provider, export_id, f"{kind} {slug}", timeout)
    click.echo(f"{slug}: {kind} {status.status} at {status.step}, {status.rows} rows, "
               f"{status.size_bytes} bytes")
    if status.status != "completed":
        click.echo(f"error: {status.error or 'not finished in time'}", err=True)
        sys.exit(1)
    click.echo(f"archive: {status.storage_key} sha256={status.sha256}")
    click.echo(f"download: {status.download_url}")


def _follow_export(provider: DataProvider, export_id: uuid.UUID, label: str,
                   timeout: float) -> export.ExportStatus:
    """Draw the job's progress until it finishes or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    with click.progressbar(length=100, label=label, show_pos=True) as bar:
        while True:
            with provider.management() as session:
                status = export.export_status(session, export_id)
            bar.label = f"{label}: {status.step}"
            bar.update(status.percent - bar.pos)
            if status.finished or time.monotonic() > deadline:
                break
            time.sleep(0.5)  # the pace of a progress bar, not a stand-in for a condition
    with provider.management() as session:
        return export.export_status(session, export_id, storage())

