"""The archive of a tenant export: JSON Lines files, one per table, and a manifest, in a .tar.gz.

Tenant rows are read through ``provider.unscoped`` in one REPEATABLE READ snapshot with a
server-side cursor and rendered to JSON by PostgreSQL (``row_to_json``), so the archive
describes one instant and a big tenant is never held in memory: each file is spooled to a
folder, then packed. The management rows are the tenant's own row, its roles, members and
plan changes, and its members' profiles (id, email, name: never a password hash), read
through the owning contexts' services.
"""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from domain.db import migrate
from domain.db.base import utcnow
from domain.db.provider import MANAGEMENT, TRIAL, DataProvider, dedicated_key
from domain.errors import NotFound
from domain.iam import services as iam
from domain.identity import services as identity
from domain.tenancy.models import PlanChange, Tenant
from domain.tenancy.tables import tenant_tables

FETCH_ROWS = 2_000
FORMAT = "allotment-tenant-export/1"
# (stage, percent, details) as the archive is made; percent runs up to ARCHIVED_PERCENT.
Progress = Callable[[str, int, dict[str, Any]], None]
ARCHIVED_PERCENT = 80


def db_key_of(provider: DataProvider, tenant_id: uuid.UUID) -> str:
    """The key of the database holding the tenant's rows (read anew: no cached route)."""
    with provider.management() as session:
        tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", field="tenant_id")
    if tenant.database_name and tenant.placement_server:
        return dedicated_key(tenant.placement_server, tenant.database_name)
    return TRIAL


@dataclass(frozen=True)
class ArchiveFile:
    """One JSON Lines file of the archive, as the manifest lists it."""

    file: str
    table: str
    database: str  # "tenant" or "management"
    rows: int
    sha256: str


@dataclass(frozen=True)
class Archive:
    """A built archive: where it is, what it holds, its checksum."""

    path: Path
    rows: int
    sha256: str
    files: list[ArchiveFile]


def build_archive(provider: DataProvider, tenant_id: uuid.UUID, export_id: uuid.UUID,
                  folder: Path, *, progress: Progress,
                  checkpoint: Callable[[str], None] = lambda _: None) -> Archive:
    """Write the tenant's rows into ``folder/export.tar.gz`` (JSON Lines files and a manifest)."""
    with provider.management() as session:
        tenant = session.get(Tenant, tenant_id)
        if tenant is None or tenant.status == "deleted":
            raise NotFound("no such tenant", field="tenant_id")
        slug, name = tenant.slug, tenant.name
        files = _write_management_rows(session, tenant, folder)
    db_key = db_key_of(provider, tenant_id)
    files += _write_tenant_rows(provider, db_key, tenant_id, folder, progress=progress, checkpoint=checkpoint)
    manifest = {
        "format": FORMAT, "export_id": str(export_id),
        "tenant": {"id": str(tenant_id), "slug": slug, "name": name},
        "database": "trial" if db_key == TRIAL else "dedicated",
        "schema_revision": {"tenant": migrate.current_revision(provider.url_of(db_key)),
                            "management": migrate.current_revision(provider.url_of(MANAGEMENT))},
        "created_at": utcnow().isoformat(),
        "rows": sum(f.rows for f in files),
        "tables": [asdict(f) for f in files],
    }
    path = folder / "export.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, "manifest.json", io.BytesIO(json.dumps(manifest, indent=2).encode()))
        for entry in files:
            with (folder / entry.file).open("rb") as source:
                _add(tar, entry.file, source)
    return Archive(path, manifest["rows"], _sha256_of(path), files)  # type: ignore[arg-type]


def _add(tar: tarfile.TarFile, name: str, source: IO[bytes]) -> None:
    info = tarfile.TarInfo(name)
    info.size = source.seek(0, io.SEEK_END)
    source.seek(0)
    info.mtime, info.mode = int(time.time()), 0o644
    tar.addfile(info, source)


def _write_tenant_rows(provider: DataProvider, db_key: str, tenant_id: uuid.UUID, folder: Path, *,
                       progress: Progress, checkpoint: Callable[[str], None]) -> list[ArchiveFile]:
    """One file per tenant table, read in one snapshot with a server-side cursor."""
    (folder / "tenant").mkdir()
    files = []
    with provider.unscoped(db_key) as session:
        conn = session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        # JSON renders timestamps in the session's time zone: make it UTC whatever the server's.
        conn.execute(text("SET LOCAL TimeZone = 'UTC'"))
        tables = tenant_tables(conn)
        quote = conn.dialect.identifier_preparer.quote
        for number, table in enumerate(tables, start=1):
            checkpoint(f"table:{table.name}")
            order = ", ".join(f"t.{quote(c.name)}" for c in table.primary_key.columns) or "1"
            # Table names come from the database's own catalogue, quoted as identifiers.
            statement = text(f"SELECT row_to_json(t)::text FROM {quote(table.name)} AS t "
                             f"WHERE t.tenant_id = :tenant ORDER BY {order}")
            result = conn.execute(statement.execution_options(yield_per=FETCH_ROWS), {"tenant": tenant_id})
            lines = (row[0].encode() + b"\n" for row in result)
            files.append(_write_lines(folder, f"tenant/{table.name}.jsonl", table.name, "tenant", lines))
            progress("archiving", ARCHIVED_PERCENT * number // (len(tables) + 1),
                     {"table": table.name, "rows": files[-1].rows})
        session.rollback()
    return files


def _write_management_rows(session: Session, tenant: Tenant, folder: Path) -> list[ArchiveFile]:
    """The tenant's row, roles, members, plan changes and its members' profiles."""
    (folder / "management").mkdir()
    members = iam.list_members(session, tenant.id)
    users = identity.users_by_id(session, [m.user_id for m in members])
    plan_changes = session.scalars(select(PlanChange).where(PlanChange.tenant_id == tenant.id)
                                   .order_by(PlanChange.created_at, PlanChange.id))
    tables: dict[str, Iterable[dict[str, Any]]] = {
        "tenants": [_columns(tenant)],
        "roles": [asdict(r) for r in iam.list_roles(session, tenant.id)],
        "memberships": [asdict(m) for m in sorted(members, key=lambda m: str(m.user_id))],
        "users": [{"id": u.id, "email": u.email, "name": u.name}
                  for u in sorted(users.values(), key=lambda u: str(u.id))],
        "plan_changes": [_columns(p) for p in plan_changes],
    }
    return [_write_lines(folder, f"management/{table}.jsonl", table, "management",
                         (_json_line(row) for row in rows))
            for table, rows in tables.items()]


def _write_lines(folder: Path, name: str, table: str, database: str, lines: Iterable[bytes]) -> ArchiveFile:
    digest, rows = hashlib.sha256(), 0
    with (folder / name).open("wb") as out:
        for line in lines:
            out.write(line)
            digest.update(line)
            rows += 1
    return ArchiveFile(name, table, database, rows, digest.hexdigest())


def _columns(row: Any) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns}


def _json_line(row: dict[str, Any]) -> bytes:
    return json.dumps(row, default=json_value, separators=(",", ":")).encode() + b"\n"


def json_value(value: Any) -> Any:
    """``json.dumps``'s ``default``: ids and times as strings; anything else is refused."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot export a {type(value).__name__}")


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for chunk in iter(lambda: source.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()
