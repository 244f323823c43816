"""The daily digest: one email per user per day summarising their unread notices.

Beat runs ``send_digests`` every ``DIGEST_CHECK_SECONDS``; from ``DIGEST_HOUR`` (UTC) on it
records the day's digest for the sending stage for every user who asked for one and for
everyone whose emails were throttled in the last day (their events were collapsed into it).
A digest is an email like any other, keyed by (user, day): its delivery row is recorded
once, so a second beat (or a second run) finds it and records nothing; the sending stage
sends it once (and retries it like any other email). A user with nothing unread since their
last digest gets none that day (a later run may still send it, once).
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


def send_digests(provider: DataProvider, ports: Mapping[str, Any], *, now: datetime, hour: int) -> DigestRun:
    """Send each due user their digest of today, if it is past ``hour`` (UTC)."""
    if now.hour < hour:
        return DigestRun(None)
    day = now.date()
    with provider.management() as session:
        users = candidates(session, day, now)
    run = DigestRun(day)
    for user_id in users:
        outcome = send_digest(provider, ports, user_id, day, now)
        run.outcomes[outcome] = run.outcomes.get(outcome, 0) + 1
    if run.outcomes.get("queued") and ports.get("wake_sender") is not None:
        ports["wake_sender"]()
    return run


@dataclass(frozen=True)
class Section:
    """One tenant's part of a digest."""

    tenant: str
    notices: list[queries.NoticeView]
    count: int


def send_digest(provider: DataProvider, ports: Mapping[str, Any], user_id: uuid.UUID, day: date,
                now: datetime) -> str:
    """The user's digest of ``day``: ``sent`` (or what else became of it), or ``empty``."""
    catalogues = ports["catalogues"]
    with provider.management() as session:
        user = identity.users_by_id(session, [user_id]).get(user_id)
        if user is None or not user.active:
            return "inactive"
        tenant_ids = sorted(iam.tenants_of(session, user_id))
        names = {t: tenancy.name_of(session, t) for t in tenant_ids}
        last = session.scalar(select(func.max(EmailDelivery.created_at)).where(
            EmailDelivery.user_id == user_id, EmailDelivery.category == DIGEST,
            EmailDelivery.created_at < _day_start(day)))
        brand_tenant = tenant_ids[0] if len(tenant_ids) == 1 else None  # several: the platform's own
        locale = translations.locale_of(catalogues, translations.user_locale(session, user_id))
        translate = translations.translator_for(session, catalogues, brand_tenant, locale)
        branding = branding_of(session, brand_tenant)
    since = last or now - timedelta(days=1)
    sections = _sections(provider, user_id, tenant_ids, names, since)
    count = sum(s.count for s in sections)
    if not count:
        return "empty"
    title = translate(texts.DIGEST.title, count=count)
    public_url = str(ports["public_url"]).rstrip("/")
    context = {"recipient": user.name, "title": title, "body": translate(texts.DIGEST.body),
               "branding": branding, "sections": sections, "link": f"{public_url}/notifications",
               "public_url": public_url, "locale": locale}
    rendered = ports["renderer"].render(texts.DIGEST.template, context, translate)
    event_id = digest_event_id(user_id, day)
    email = Email(key=f"{event_id}:{user.email.lower()}", to=user.email, subject=title, text=rendered.text,
                  html=rendered.html, language=locale, sender_name=branding.display_name,
                  reply_to=branding.sender_address)
    request = Request(event_id, user.email, DIGEST, title, user_id, brand_tenant, None)
    with provider.management() as session:
        (outcome,) = deliveries.record(session, ports["sealer"], ports["mail_from"], [(request, email)])
        session.commit()
    return outcome.state


def _sections(provider: DataProvider, user_id: uuid.UUID, tenant_ids: list[uuid.UUID],
              names: dict[uuid.UUID, str], since: datetime) -> list[Section]:
    sections = []
    for tenant_id in tenant_ids:
        try:
            with provider.tenant(tenant_id) as session:
                notices, count = queries.unread_since(session, user_id, since, MAX_LISTED)
        except NotFound:  # a tenant deleted meanwhile
            continue
        if count:
            sections.append(Section(names[tenant_id], notices, count))
    return sections
