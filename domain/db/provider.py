"""The data provider: tenant -> database -> session (DESIGN §3).

- ``management()`` opens a session on the management database.
- ``tenant(tenant_id)`` routes the tenant to the shared trial database or its dedicated
  one and opens a session that filters every TenantScoped query by the tenant and, on
  the trial database, switches to the RLS-bound role with ``app.tenant_id`` set.
- Writes of every tenant session, on the trial database or a dedicated one, pass a gate
  (``_gate_writes``): the first write of a transaction takes the tenant's write lock shared
  on that database and checks the tenant is not fenced there (moved out). Promotion holds
  that lock exclusively on the trial database while it copies, and offboarding holds it on
  the tenant's database (trial or dedicated) while it archives, so the tenant's writes
  wait - reads do not - and a writer holding a stale route gets ``TenantMoved`` and retries
  on the new route instead of writing rows the move (or the purge) would leave behind.
- ``unscoped(db_key)`` is the explicit opt-out, for code that works across every tenant of
  a database by design (the export, the message plane, beat's sweeps); grep for
  ``unscoped(`` to find every use, each declared in tests/integration/test_architecture.py.
- ``management_writer()`` is for a request whose whole write is one statement on the
  management database (the sign-up): each statement commits as it runs, with no session.

Routing is cached per process for ``routing_cache_ttl`` seconds and dropped at once by
``invalidate``; engines are kept in a bounded LRU so thousands of tenants do not mean
thousands of open pools.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Engine, bindparam, create_engine, event, make_url, select, text
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from config.settings import Settings, database_on
from domain.db.base import TenantScoped
from domain.db.fences import tenant_fences
from domain.db.routing import RoutingChannel
from domain.db.sql import Sql, autocommit, pipelined
from domain.errors import NotFound, Transient

MANAGEMENT = "management"
TRIAL = "trial"
DEDICATED_PREFIX = "dedicated:"


@dataclass(frozen=True)
class Placement:
    """Where a tenant's data lives, as recorded in the management database."""

    status: str
    server: str | None = None
    database: str | None = None


@dataclass(frozen=True)
class Route:
    """A resolved tenant route."""

    tenant_id: uuid.UUID
    status: str
    db_key: str
    url: str


# Reads a tenant's placement from the management database (tenancy owns that table).
PlacementLookup = Callable[[Session, uuid.UUID], Placement | None]
# Lists (tenant_id, server, database) of every dedicated database.
DedicatedLister = Callable[[Session], list[tuple[uuid.UUID, str, str]]]


class ProviderSession(Session):
    """A Session that knows its database key and, when scoped, its tenant."""

    def execute_sql(self, statement: Sql, params: Mapping[str, Any]) -> Sequence[Any]:
        """One statement straight to the driver, in this session's transaction; its rows.

        As ``pipelined``: the tenant filter and the write gate do not see it, so on the
        management database only (``Writes``)."""
        if self.info.get("db_key") != MANAGEMENT:
            raise PermissionError("execute_sql bypasses the tenant filter: management sessions only")
        (rows,) = pipelined(self.connection(), (statement, params))
        return rows


class StatementWriter:
    """The unit of work of a request whose whole write is one statement on the management
    database: each ``execute_sql`` commits as it runs (``domain.db.sql.autocommit``), with
    no session, BEGIN or COMMIT. ``info`` is what a session's would be: the outbox keeps
    the envelopes to publish after the request there."""

    def __init__(self, engine: Engine, info: dict[str, Any]) -> None:
        self._engine = engine
        self.info = info

    def execute_sql(self, statement: Sql, params: Mapping[str, Any]) -> Sequence[Any]:
        """Run ``statement`` on its own, committed as it runs; its rows."""
        return autocommit(self._engine, statement, params)


class Writes(Protocol):
    """Where a use case of the management database sends its statements: a session (the
    caller's transaction) or a ``StatementWriter`` (each statement committed as it runs)."""

    @property
    def info(self) -> dict[Any, Any]: ...

    def execute_sql(self, statement: Sql, params: Mapping[str, Any]) -> Sequence[Any]: ...


class TenantMoved(Transient):
    """The tenant's data moved to another database after this session was routed.

    Transient: drop the session, and run the unit of work again on the new route (the
    provider has already forgotten the old one)."""

    def __init__(self, tenant_id: uuid.UUID) -> None:
        super().__init__(f"tenant {tenant_id} moved to another database; retry on its new route")
        self.tenant_id = tenant_id


def write_lock_key(tenant_id: uuid.UUID) -> int:
    """The advisory lock (bigint) guarding a tenant's writes in the database it lives in."""
    return int.from_bytes(tenant_id.bytes[:8], "big", signed=True)


_WRITE_LOCK = Sql("SELECT pg_advisory_xact_lock_shared(:key)")
_FENCED = Sql(select(tenant_fences.c.moved_to).where(tenant_fences.c.tenant_id == bindparam("tenant")))
_RLS = Sql("SELECT set_config('role', :role, true), set_config('app.tenant_id', :tenant, true)")


def _gate_writes(session: Session) -> None:
    """Before the first write of a transaction of a tenant session (trial or dedicated): wait
    while the tenant is being copied or archived (its write lock is held exclusively on this
    database), then refuse if it moved out of it (promoted, or offboarded)."""
    gated_writes(session)


def gated_writes(session: Session, *writes: tuple[Sql, Mapping[str, Any]]) -> list[Sequence[Any]]:
    """Run ``writes`` (``pipelined``) behind the session's write gate; the rows of each.

    When the gate is still to pass, its lock and fence check go first in the same round
    trip: the writes run once the lock is granted. When the tenant turns out to have moved
    they have run all the same, so on ``TenantMoved`` the caller must roll back, never
    commit (``domain.messaging.handling`` closes the session). Statements the caller writes
    itself, which the tenant filter does not see, so each checks its tenant against the
    session's before it is sent: the inbox's claim, a notification's notices.
    """
    gate = bool(session.info.get("write_gate")) and not session.info.get("gate_passed")
    if not gate:
        return pipelined(session.connection(), *writes) if writes else []
    tenant_id = session.info["tenant_id"]
    # The check runs after the lock was granted, with a snapshot of its own, so it sees a
    # fence committed by the promotion or offboarding that held the lock.
    _, fenced, *rows = pipelined(session.connection(), (_WRITE_LOCK, {"key": write_lock_key(tenant_id)}),
                                 (_FENCED, {"tenant": tenant_id}), *writes)
    if fenced:
        session.info["on_moved"](tenant_id)
        raise TenantMoved(tenant_id)
    # Passed inside a savepoint, the lock goes with it if it is rolled back: where it was
    # passed is kept, so that the gate is passed again once that savepoint ends.
    session.info["gate_passed"] = session.get_nested_transaction() or True
    return rows


@event.listens_for(ProviderSession, "after_transaction_end")
def _reset_gate(session: Session, transaction: Any) -> None:
    # The outermost transaction: its lock is released. The savepoint the gate was passed in:
    # its lock is released if it was rolled back (if released, the next write's gate costs
    # a check, the lock being re-entrant).
    if transaction.parent is None or session.info.get("gate_passed") is transaction:
        session.info.pop("gate_passed", None)


@event.listens_for(ProviderSession, "do_orm_execute")
def _filter_by_tenant(state: ORMExecuteState) -> None:
    tenant_id = state.session.info.get("tenant_id")
    if tenant_id is None:
        return
    if state.is_insert or state.is_update or state.is_delete:
        _gate_writes(state.session)
    if state.is_insert or state.is_update:
        _refuse_foreign_tenant_ids(state, tenant_id)
    if state.is_select or state.is_update or state.is_delete:
        state.statement = state.statement.options(with_loader_criteria(
            TenantScoped, lambda cls: cls.tenant_id == tenant_id, include_aliases=True))


def _refuse_foreign_tenant_ids(state: ORMExecuteState, tenant_id: uuid.UUID) -> None:
    """Refuse ORM INSERT/UPDATE statements writing another tenant's id (they bypass the flush)."""
    mapper = state.bind_mapper
    if mapper is None or not issubclass(mapper.class_, TenantScoped):
        return
    for values in _written_values(state.statement, state.parameters):
        for column, value in values.items():
            if getattr(column, "key", column) == "tenant_id" and getattr(value, "value", value) != tenant_id:
                # An expression we cannot evaluate is refused too: it is not provably this tenant.
                raise PermissionError("another tenant's id written through a tenant session")


def _written_values(statement: Any, parameters: Any) -> Iterator[Mapping[Any, Any]]:
    """Every column -> value mapping an INSERT/UPDATE writes: ``.values()`` and execute parameters."""
    # SQLAlchemy keeps .values() on these attributes; there is no public accessor.
    yield statement._values or {}
    yield dict(getattr(statement, "_ordered_values", None) or ())
    for rows in getattr(statement, "_multi_values", ()):
        for row in rows:
            yield row if isinstance(row, Mapping) else dict(zip(statement.table.c, row, strict=False))
    yield from parameters if isinstance(parameters, list) else [parameters or {}]


@event.listens_for(ProviderSession, "before_flush")
def _stamp_tenant(session: Session, flush_context: Any, instances: Any) -> None:
    tenant_id = session.info.get("tenant_id")
    if tenant_id is None:
        return
    if session.new or session.dirty or session.deleted:
        _gate_writes(session)
    for obj in session.new:
        if isinstance(obj, TenantScoped) and getattr(obj, "tenant_id", None) is None:
            obj.tenant_id = tenant_id
    # New, changed and deleted rows alike: a detached row of another tenant added to this
    # session, or a row moved to another tenant, would otherwise be written unfiltered.
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, TenantScoped) and obj.tenant_id != tenant_id:
            raise PermissionError("row of another tenant written through a tenant session")


@event.listens_for(ProviderSession, "after_begin")
def _enter_rls(session: Session, transaction: Any, connection: Any) -> None:
    role = session.info.get("rls_role")
    if role:
        # One round trip: the role that RLS binds and the tenant its policies read, as bound
        # parameters (set_config(..., true) is SET LOCAL), so no value is ever spliced into SQL.
        # Straight to the driver: it starts every transaction of every tenant session.
        pipelined(connection, (_RLS, {"role": role, "tenant": str(session.info["tenant_id"])}))


class DataProvider:
    """Routes tenants to databases and hands out sessions bound to them."""

    def __init__(self, settings: Settings, placement_of: PlacementLookup,
                 dedicated: DedicatedLister, channel: RoutingChannel | None = None,
                 connection_settings: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        # PostgreSQL settings every connection starts with (libpq ``options``): the web
        # process's lock and statement timeouts.
        self._options = " ".join(f"-c {name}={value}"
                                 for name, value in sorted((connection_settings or {}).items()))
        self._channel = channel
        self._placement_of = placement_of
        self._dedicated = dedicated
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._routes: dict[uuid.UUID, tuple[Route, float]] = {}
        # Bumped by invalidate(): a lookup that raced an invalidation must not be cached.
        self._generation = 0
        self._lock = threading.Lock()

    # -- engines -------------------------------------------------------------------
    def engine(self, url: str) -> Engine:
        """A pooled engine for ``url``, from a bounded LRU cache."""
        with self._lock:
            engine = self._engines.get(url)
            if engine is not None:
                self._engines.move_to_end(url)
                return engine
            engine = create_engine(url, pool_size=self.settings.db_pool_size, max_overflow=5,
                                   pool_recycle=1800, connect_args=self._connect_args(url))
            event.listen(engine, "checkin", self._closer(url, weakref.ref(engine)))
            self._engines[url] = engine
            while len(self._engines) > self.settings.engine_cache_size:
                _, old = self._engines.popitem(last=False)
                old.dispose()
            return engine

    def _connect_args(self, url: str) -> dict[str, str]:
        """Our ``options`` after the ones the URL (or else PGOPTIONS) already gives, which an
        ``options`` argument would otherwise replace."""
        if not self._options:
            return {}
        given = make_url(url).query.get("options") or os.environ.get("PGOPTIONS") or ""
        given = " ".join(given) if isinstance(given, tuple) else given
        return {"options": f"{given} {self._options}".strip()}

    def _closer(self, url: str, engine: weakref.ref[Engine]) -> Callable[[Any, Any], None]:
        """A checkin hook closing connections of an engine no longer in the cache."""

        def close_if_evicted(dbapi_connection: Any, record: Any) -> None:
            # A session that outlived its engine's eviction still works, but its connection
            # is closed when returned instead of idling in a pool nobody tracks any more.
            current = engine()
            if current is None or self._engines.get(url) is not current:
                record.close()

        return close_if_evicted

    def forget(self, url: str) -> None:
        """Close and drop the engine of a database that is about to go (or has gone)."""
        with self._lock:
            engine = self._engines.pop(url, None)
        if engine is not None:
            engine.dispose()

    def ping(self) -> None:
        """Raise if the management database does not answer."""
        with self.management() as session:
            session.execute(text("SELECT 1"))

    def engine_count(self) -> int:
        """How many engines are open (bounded by ``engine_cache_size``)."""
        return len(self._engines)

    def after_fork(self) -> None:
        """Drop inherited connections in a forked child (prefork worker, gunicorn)."""
        with self._lock:
            for engine in self._engines.values():
                engine.dispose(close=False)

    def dispose(self) -> None:
        """Close every pool, and stop hearing routing changes (using the provider again
        starts both afresh)."""
        if self._channel is not None:
            self._channel.close()
        self.invalidate()  # not heard from now on; a lookup in flight must not cache either
        with self._lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    # -- routing -------------------------------------------------------------------
    def url_of(self, db_key: str) -> str:
        """The URL of a database key: management, trial, or dedicated:<database>@<server>."""
        if db_key == MANAGEMENT:
            return self.settings.database_url
        if db_key == TRIAL:
            return self.settings.trial_database_url
        if db_key.startswith(DEDICATED_PREFIX):
            name, _, server = db_key[len(DEDICATED_PREFIX):].partition("@")
            return database_on(self.server_url(server), name)
        raise ValueError(f"unknown database key {db_key!r}")

    def server_url(self, label: str) -> str:
        """The configured placement server whose label is ``label``."""
        for url in self.settings.placement_servers:
            if server_label(url) == label:
                return url
        raise LookupError(f"placement server {label!r} is not configured")

    def route(self, tenant_id: uuid.UUID) -> Route:
        """Where ``tenant_id`` lives now (cached; NotFound for an unknown tenant)."""
        tenant_id = _as_uuid(tenant_id)
        cached = self._routes.get(tenant_id)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        generation = self._generation
        with self.management() as session:
            placement = self._placement_of(session, tenant_id)
        if placement is None or placement.status == "deleted":
            raise NotFound("no such tenant", field="tenant")
        if placement.database and placement.server:
            key = dedicated_key(placement.server, placement.database)
        else:
            key = TRIAL
        route = Route(tenant_id, placement.status, key, self.url_of(key))
        with self._lock:
            # If routing was invalidated while we read it, what we read may predate the change;
            # and a process that cannot hear changes from the others must not cache at all.
            if generation == self._generation and self._hears_changes():
                self._routes[tenant_id] = (route, time.monotonic() + self.settings.routing_cache_ttl)
        return route

    def hears_routing_changes(self) -> bool:
        """True while this process may cache routes: it hears other processes' changes."""
        return self._hears_changes()

    def _hears_changes(self) -> bool:
        return self._channel is None or self._channel.listening(self.invalidate)

    def routing_changed(self, tenant_id: uuid.UUID | None) -> None:
        """Call after committing a routing change: every process drops the old route."""
        self.invalidate(tenant_id)
        if self._channel is not None:
            self._channel.announce(_as_uuid(tenant_id) if tenant_id else None)

    def invalidate(self, tenant_id: uuid.UUID | None = None) -> None:
        """Forget cached routes (one tenant, or all) so the next lookup reads them anew."""
        with self._lock:
            self._generation += 1
            if tenant_id is None:
                self._routes.clear()
            else:
                self._routes.pop(_as_uuid(tenant_id), None)

    def tenant_databases(self) -> list[str]:
        """Keys of every tenant database: the trial database and each dedicated one."""
        with self.management() as session:
            dedicated = self._dedicated(session)
        return [TRIAL] + [dedicated_key(server, name) for _, server, name in dedicated]

    def all_databases(self) -> list[str]:
        """The management database and every tenant database (for the relay)."""
        return [MANAGEMENT, *self.tenant_databases()]

    # -- sessions ------------------------------------------------------------------
    def management(self) -> ProviderSession:
        """A session on the management database."""
        return self._session(MANAGEMENT)

    def tenant(self, tenant_id: uuid.UUID) -> ProviderSession:
        """A session on the tenant's database, filtered by tenant, its writes gated (trial
        or dedicated: every tenant database has ``tenant_fences``), and RLS on trial."""
        route = self.route(tenant_id)
        session = self._session(route.db_key, tenant_id=tenant_id)
        session.info["write_gate"] = True
        session.info["on_moved"] = self.invalidate
        if route.db_key == TRIAL and self.settings.tenant_db_role:
            session.info["rls_role"] = self.settings.tenant_db_role
        return session

    def unscoped(self, db_key: str) -> ProviderSession:
        """A session with no tenant filter: only for code that works across every tenant of a
        database by design (tenancy's export, the message plane, beat's sweeps);
        ``UNSCOPED_USERS`` in tests/integration/test_architecture.py lists each, and why."""
        return self._session(db_key)

    def management_writer(self) -> StatementWriter:
        """Statements on the management database, each committed as it runs (no session)."""
        return StatementWriter(self.engine(self.url_of(MANAGEMENT)), self._info(MANAGEMENT))

    def _session(self, db_key: str, tenant_id: uuid.UUID | None = None) -> ProviderSession:
        return ProviderSession(bind=self.engine(self.url_of(db_key)), info=self._info(db_key, tenant_id),
                               expire_on_commit=False)

    def _info(self, db_key: str, tenant_id: uuid.UUID | None = None) -> dict[str, Any]:
        info: dict[str, Any] = {"db_key": db_key,
                                "lease_seconds": self.settings.message_lease_seconds,
                                # Per-tenant in-flight limits by queue (domain.messaging.fairness).
                                "admission": self.settings.fairness_limits}
        if tenant_id is not None:
            info["tenant_id"] = _as_uuid(tenant_id)
        return info


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID:
    """A tenant id as a UUID; anything that is not one raises ValueError before any SQL runs."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def server_label(url: str) -> str:
    """A credential-free name for a server: ``host:port``, or the socket directory."""
    head, _, query = url.partition("?")
    authority = head.partition("://")[2].split("/", 1)[0].rpartition("@")[2]
    if authority:
        return authority if ":" in authority else f"{authority}:5432"
    for part in query.split("&"):
        if part.startswith("host="):
            return part[len("host="):]
    return "localhost:5432"


def dedicated_key(server: str, database: str) -> str:
    """The key of a dedicated database: ``dedicated:<database>@<server label>``."""
    return f"{DEDICATED_PREFIX}{database}@{server}"
