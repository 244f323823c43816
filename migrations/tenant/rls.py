"""Row Level Security for tenant tables: the second wall behind the ORM's tenant filter."""
from __future__ import annotations

import re

from alembic import op
from sqlalchemy import text
from sqlalchemy.engine import Connection

# The role name is spliced into DDL (GRANT takes no parameters), so it must be a plain identifier.
ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def enable(table: str) -> None:
    """Only rows of the tenant in ``app.tenant_id`` are visible and writable."""
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid) "
        f"WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)")


def grant_role(connection: Connection, role: str) -> None:
    """Create the application role if needed and grant it row access to every table."""
    if not ROLE_NAME.fullmatch(role):
        raise ValueError(f"tenant role {role!r} is not a plain lower-case SQL identifier")
    connection.execute(text(
        "DO $$ BEGIN "
        f"IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN "
        f"CREATE ROLE {role} NOLOGIN; END IF; "
        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"))
    connection.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
    connection.execute(text(
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"))
    # The application never writes the schema revision; only migrations (as the owner) do.
    connection.execute(text(f"REVOKE ALL ON alembic_version FROM {role}"))
    connection.execute(text(
        f"DO $$ BEGIN EXECUTE format('GRANT {role} TO %I', current_user); "
        "EXCEPTION WHEN others THEN NULL; END $$"))
