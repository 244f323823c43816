"""The daily digest: one email per user per day summarising their unread notices.

Beat runs ``send_digests`` every ``DIGEST_CHECK_SECONDS``; from ``DIGEST_HOUR`` (UTC) on it
records the day's digest for the sending stage for every user who asked for one and for
everyone whose emails were throttled in the last day (their events were collapsed into it).
A digest is an email like any other, keyed by (user, day): its delivery row is recorded
once, so a second beat (or a second run) finds it and records nothing; the sending stage
sends it once (and retries it like any other email). A user with nothing unread since their
last digest gets none that day (a later run may still send it, once).

A digest lists the unread notices created after the previous digest's window and at the
latest ``grace`` before it began (``NOTICE_GRACE``, or ``grace_for`` the deployment's task
time limit). A notice is stamped when its handler's transaction starts but seen only once it
commits, so a digest that went up to its own start could miss one committed after it read
the notices and stamped before it, and the next digest (from that start on) would skip it
for good. ``grace`` before the digest began every such transaction has ended. The window is
exact and needs nothing stored: the digest's row is recorded in the transaction whose start
(``now()``) the window ends ``grace`` before, so the next digest starts from the row's
``created_at`` less ``grace``, where this one stopped: no notice twice, none skipped.
"""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain.db.provider import DataProvider
from domain.errors import NotFound
from domain.iam import services as iam
from domain.identity import services as identity
from domain.notifications import deliveries, queries, texts
from domain.notifications.branding import branding_of
from domain.notifications.categories import DIGEST
from domain.notifications.deliveries import Request
from domain.notifications.mail import Email
from domain.notifications.models import EmailDelivery
from domain.notifications.preferences import digest_subscribers
from domain.tenancy import queries as tenancy
from domain.translations import services as translations

DIGEST_NAMESPACE = uuid.UUID("5b0f3d3e-9f2c-4a51-8d53-6f1f0e8a7c21")
MAX_LISTED = 20  # notices listed per tenant; the rest are counted
# A notice is stamped with its transaction's start and seen once committed: a digest lists
# those stamped up to ``grace`` before it began (their transactions have ended by then), and
# the next digest goes on from there. Longer than any handler's transaction (``grace_for``).
NOTICE_GRACE = timedelta(minutes=10)


@dataclass(frozen=True)
class DigestRun:
    """What one run did: the day, and each user's outcome."""

    day: date | None
    outcomes: dict[str, int] = field(default_factory=dict)  # sent, empty, throttled ... -> users


def digest_event_id(user_id: uuid.UUID, day: date) -> uuid.UUID:
    """The event id of a user's digest of ``day``: the (user, day) key of its delivery."""
    return uuid.uuid5(DIGEST_NAMESPACE, f"{user_id}:{day.isoformat()}")


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)  # the digest's days are UTC days


def candidates(session: Session, day: date, now: datetime) -> list[uuid.UUID]:
    """Who is due a digest for ``day``: subscribers and throttled recipients, less those done."""
    throttled = session.scalars(select(EmailDelivery.user_id).distinct().where(
        EmailDelivery.state == "throttled", EmailDelivery.user_id.is_not(None),
        EmailDelivery.created_at > now - timedelta(days=1)))
    done = session.scalars(select(EmailDelivery.user_id).where(
        EmailDelivery.category == DIGEST, EmailDelivery.created_at >= _day_start(day)))
    wanted = set(digest_subscribers(session)) | {u for u in throttled if u is not None}
    return sorted(wanted - {u for u in done if u is not None})


def send_digests(provider: DataProvider, ports: Mapping[str, Any], *, now: datetime, hour: int,
                 grace: timedelta = NOTICE_GRACE) -> DigestRun:
    """Send each due user their digest of today, if it is past ``hour`` (UTC)."""
    if now.hour < hour:
        return DigestRun(None)
    day = now.date()
    with provider.management() as session:
        users = candidates(session, day, now)
    run = DigestRun(day)
    for user_id in users:
        outcome = send_digest(provider, ports, user_id, day, grace=grace)
        run.outcomes[outcome] = run.outcomes.get(outcome, 0) + 1
    if run.outcomes.get("queued") and ports.get("wake_sender") is not None:
        ports["wake_sender"]()
    return run


def grace_for(task_time_limit: float) -> timedelta:
    """The grace of a deployment whose tasks are killed after ``task_time_limit`` seconds: no
    handler's transaction (which writes the notices) outlives its task."""
    return max(NOTICE_GRACE, timedelta(seconds=2 * task_time_limit))


@dataclass(frozen=True)
class Section:
    """One tenant's part of a digest."""

    tenant: str
    notices: list[queries.NoticeView]
    count: int


def send_digest(provider: DataProvider, ports: Mapping[str, Any], user_id: uuid.UUID, day: date, *,
                grace: timedelta = NOTICE_GRACE) -> str:
    """The user's digest of ``day``: ``sent`` (or what else became of it), or ``empty``."""
    with provider.management() as session:
        # The digest's row is recorded in this transaction: its created_at is this instant.
        started = session.scalar(select(func.now()))
        user = identity.users_by_id(session, [user_id]).get(user_id)
        if started is None or user is None or not user.active:
            return "inactive"
        tenant_ids = sorted(iam.tenants_of(session, user_id))
        names = {t: tenancy.name_of(session, t) for t in tenant_ids}
        last = session.scalar(select(func.max(EmailDelivery.created_at)).where(
            EmailDelivery.user_id == user_id, EmailDelivery.category == DIGEST,
            EmailDelivery.created_at < _day_start(day)))
        # From where the last digest stopped (or a day back), to ``grace`` before this one.
        since = last - grace if last is not None else started - timedelta(days=1)
        sections = _sections(provider, user_id, tenant_ids, names, since=since, until=started - grace)
        if not sections:
            return "empty"
        request, email = _compose(session, ports, user, tenant_ids=tenant_ids, sections=sections,
                                  event_id=digest_event_id(user_id, day))
        (outcome,) = deliveries.record(session, ports["sealer"], ports["mail_from"], [(request, email)])
        session.commit()
    return outcome.state


def _compose(session: Session, ports: Mapping[str, Any], user: identity.UserRow, *,
             tenant_ids: list[uuid.UUID], sections: list[Section],
             event_id: uuid.UUID) -> tuple[Request, Email]:
    """The digest email of ``sections`` for ``user``, in their language and the tenant's branding."""
    catalogues = ports["catalogues"]
    brand_tenant = tenant_ids[0] if len(tenant_ids) == 1 else None  # several: the platform's own
    locale = translations.locale_of(catalogues, translations.user_locale(session, user.id))
    translate = translations.translator_for(session, catalogues, brand_tenant, locale)
    branding = branding_of(session, brand_tenant)
    count = sum(s.count for s in sections)
    title = translate(texts.DIGEST.title, count=count)
    public_url = str(ports["public_url"]).rstrip("/")
    context = {"recipient": user.name, "title": title, "body": translate(texts.DIGEST.body),
               "branding": branding, "sections": sections, "link": f"{public_url}/notifications",
               "public_url": public_url, "locale": locale}
    rendered = ports["renderer"].render(texts.DIGEST.template, context, translate)
    email = Email(key=f"{event_id}:{user.email.lower()}", to=user.email, subject=title, text=rendered.text,
                  html=rendered.html, language=locale, sender_name=branding.display_name,
                  reply_to=branding.sender_address)
    return Request(event_id, user.email, DIGEST, title, user.id, brand_tenant, None), email


def _sections(provider: DataProvider, user_id: uuid.UUID, tenant_ids: list[uuid.UUID],
              names: dict[uuid.UUID, str], *, since: datetime, until: datetime) -> list[Section]:
    sections = []
    for tenant_id in tenant_ids:
        try:
            with provider.tenant(tenant_id) as session:
                notices, count = queries.unread_between(session, user_id, since, until, MAX_LISTED)
        except NotFound:  # a tenant deleted meanwhile
            continue
        if count:
            sections.append(Section(names[tenant_id], notices, count))
    return sections
