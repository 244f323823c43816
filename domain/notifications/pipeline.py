"""The one path every event takes to people: event -> recipients -> notice (+ email).

A handler describes the event (an ``Announcement``: category, texts, values) and names the
people it concerns; ``notify`` resolves them (address, language, choices), renders each
email (when they want it by email) and records them all for the sending stage with
``deliveries.record`` (at most once per (event, recipient)), then writes each one an in-app
notice in the handler's transaction (when they want it in the app). The notice keeps what
became of the email when it was written (``queued``: its delivery row says the rest).
Throttled emails keep their notice even where the app channel is off: the digest is made
of notices.

The reads that resolve the recipients and the recording of the emails run on the
management database in autocommit: the accounts, languages, choices and standing in the
tenant read together in one round trip (no BEGIN, no COMMIT), and the emails' rate locks and
rows as one transaction in one round trip (``deliveries.record``). The notices are one
statement in the handler's transaction.
A tenant's branding and text overrides are read once per ``TENANT_TEXTS_SECONDS`` per
process (``TenantTexts``): a change reaches emails within that.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from domain.db.provider import gated_writes
from domain.db.sql import Sql
from domain.messaging.handling import HandlerContext
from domain.notifications import deliveries
from domain.notifications.branding import Branding, branding_of
from domain.notifications.categories import MANDATORY
from domain.notifications.deliveries import Outcome, Request
from domain.notifications.mail import Email
from domain.notifications.recipients import Person, Recipient, resolve
from domain.notifications.texts import NoticeText
from domain.translations import services as translations
from domain.translations.catalogues import Catalogues
from domain.translations.translator import Translator

TENANT_TEXTS_SECONDS = 5.0

# An event's in-app notices, one statement for all its recipients (sent with gated_writes).
_NOTICES = Sql("""
INSERT INTO notices (id, tenant_id, user_id, event_id, category, title, body, email_status, email_error)
SELECT id, CAST(:tenant AS uuid), user_id, CAST(:event AS uuid), :category, title, body,
       email_status, email_error
FROM unnest(CAST(:ids AS uuid[]), CAST(:users AS uuid[]), CAST(:titles AS text[]), CAST(:bodies AS text[]),
            CAST(:states AS text[]), CAST(:errors AS text[]))
     AS t(id, user_id, title, body, email_status, email_error)
""")


@dataclass(frozen=True)
class Announcement:
    """An event as the people it reaches hear it."""

    tenant_id: uuid.UUID | None
    category: str
    text: NoticeText
    params: Mapping[str, object]  # placeholder values; datetimes are written in each reader's language
    link: str = "/notifications"  # where the email's button leads (a path of the web app)
    extra: Mapping[str, Any] = field(default_factory=dict)  # more for the email template
    # Reaches only the tenant's active members (and operators); False for an account's own
    # message, which names a tenant only as the one its owner was signed in to.
    members_only: bool = True


class TenantTexts:
    """A tenant's branding and its overrides per locale, kept for a few seconds per process."""

    def __init__(self, seconds: float = TENANT_TEXTS_SECONDS) -> None:
        self.seconds = seconds
        self._kept: dict[tuple[uuid.UUID | None, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _get(self, key: tuple[uuid.UUID | None, str], load: Any) -> Any:
        now = time.monotonic()
        with self._lock:
            found = self._kept.get(key)
        if found is not None and found[0] > now:
            return found[1]
        value = load()
        with self._lock:
            if len(self._kept) > 10_000:
                self._kept.clear()
            self._kept[key] = (now + self.seconds, value)
        return value

    def branding(self, session: Session, tenant_id: uuid.UUID | None) -> Branding:
        """The tenant's branding (read at most every few seconds)."""
        return self._get((tenant_id, ""), lambda: branding_of(session, tenant_id))  # type: ignore[no-any-return]

    def translator(self, session: Session, catalogues: Catalogues, tenant_id: uuid.UUID | None,
                   locale: str) -> Translator:
        """A translator for ``locale`` with the tenant's overrides (read at most every few seconds)."""
        overrides = self._get((tenant_id, locale),
                              lambda: translations.overrides_for(session, tenant_id, locale))
        return Translator(locale, catalogues, overrides)


@dataclass(frozen=True)
class Audience:
    """The recipients of one announcement, with what their emails need."""

    recipients: list[Recipient]
    branding: Branding
    translators: dict[str, Translator]


def audience(session: Session, ctx: HandlerContext, announcement: Announcement,
             people: list[Person]) -> Audience:
    """Resolve ``people`` on the management database ``session`` (reads only)."""
    catalogues, texts = ctx.ports["catalogues"], _texts(ctx)
    member_tenant = announcement.tenant_id if announcement.members_only else None
    recipients = resolve(session, catalogues, people, announcement.category, member_tenant)
    translators = {locale: texts.translator(session, catalogues, announcement.tenant_id, locale)
                   for locale in {r.locale for r in recipients}}
    emailing = any(r.email_on and r.email for r in recipients)
    branding = texts.branding(session, announcement.tenant_id) if emailing else Branding("Allotment")
    return Audience(recipients, branding, translators)


def _texts(ctx: HandlerContext) -> TenantTexts:
    found = ctx.ports.get("tenant_texts")
    return found if found is not None else TenantTexts(seconds=0)


def notify(ctx: HandlerContext, announcement: Announcement, people: list[Person],
           management: Session | None = None) -> list[Outcome | None]:
    """Tell ``people`` about the event: a notice and an email each, as they chose.

    The emails are rendered here and recorded for the sending stage in one statement,
    committed on the management database before the handler's own transaction (a
    redelivery finds them); then a sender is woken. ``management``: the handler's own
    session when it writes the management database (the reads then share its transaction).
    """
    tenant_id = ctx.session.info.get("tenant_id")
    if tenant_id is not None and announcement.tenant_id != tenant_id:  # before anything is recorded
        raise PermissionError("another tenant's notices written through a tenant session")
    with ctx.provider.management() as own:
        # Nothing here needs the reads in one snapshot, and the record is atomic on its own:
        # autocommit spares a BEGIN and a COMMIT round trip per event.
        own.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        found = audience(management if management is not None else own, ctx, announcement, people)
        texts = [_texts_for(announcement, found, recipient) for recipient in found.recipients]
        wanted = [(i, _email(ctx, announcement, found, recipient, texts[i]))
                  for i, recipient in enumerate(found.recipients) if recipient.email_on and recipient.email]
        recorded = deliveries.record(own, ctx.ports["sealer"], ctx.ports["mail_from"],
                                     [request_and_email for _, request_and_email in wanted])
    outcomes: list[Outcome | None] = [None] * len(found.recipients)
    for (i, _), outcome in zip(wanted, recorded, strict=True):
        outcomes[i] = outcome
    if any(outcome is not None and outcome.state == "queued" for outcome in outcomes):
        wake = ctx.ports.get("wake_sender")
        if wake is not None:
            wake()
    _write_notices(ctx, announcement, found.recipients, texts, outcomes)
    return outcomes


def _texts_for(announcement: Announcement, found: Audience,
               recipient: Recipient) -> tuple[str, str, dict[str, object]]:
    """The notice's title and body in the recipient's language, and the values they were made of."""
    translate = found.translators[recipient.locale]
    params = {k: translate.datetime(v) if isinstance(v, datetime) else v
              for k, v in announcement.params.items()}
    return translate(announcement.text.title, **params), translate(announcement.text.body, **params), params


def _write_notices(ctx: HandlerContext, announcement: Announcement, recipients: list[Recipient],
                   texts: list[tuple[str, str, dict[str, object]]], outcomes: list[Outcome | None]) -> None:
    """The in-app notices, in the handler's transaction (one statement).

    Throttled emails keep their notice even where the app channel is off: the digest is
    made of notices.
    """
    tenant_id = ctx.session.info.get("tenant_id")
    if tenant_id is None:  # the handler writes elsewhere: no notices
        return
    rows = [(recipient.user_id, title[:300], body, outcome)
            for recipient, (title, body, _), outcome in zip(recipients, texts, outcomes, strict=True)
            if recipient.user_id is not None
            and (recipient.in_app or (outcome is not None and outcome.state == "throttled"))]
    if not rows:
        return
    # Straight to the driver, which the tenant filter does not see: notify() checked the
    # tenant before anything was recorded (and RLS checks it again on the trial database).
    gated_writes(ctx.session, (_NOTICES, {
        "ids": [uuid.uuid4() for _ in rows], "tenant": tenant_id, "event": uuid.UUID(ctx.envelope.event_id),
        "category": announcement.category, "users": [user_id for user_id, *_ in rows],
        "titles": [title for _, title, _, _ in rows], "bodies": [body for _, _, body, _ in rows],
        "states": [outcome.state if outcome else None for *_, outcome in rows],
        "errors": [outcome.error if outcome else None for *_, outcome in rows]}))


def _email(ctx: HandlerContext, announcement: Announcement, found: Audience, recipient: Recipient,
           texts: tuple[str, str, dict[str, object]]) -> tuple[Request, Email]:
    """The recipient's email, rendered, and what it is for."""
    assert recipient.email is not None
    title, body, values = texts
    branding = found.branding
    translate = found.translators[recipient.locale]
    public_url = str(ctx.ports["public_url"]).rstrip("/")
    context = {"recipient": recipient.name, "title": title, "body": body, "branding": branding,
               "link": public_url + announcement.link, "public_url": public_url, "locale": recipient.locale,
               "values": values, **announcement.extra}
    rendered = ctx.ports["renderer"].render(announcement.text.template, context, translate)
    email = Email(key=f"{ctx.envelope.event_id}:{recipient.email.lower()}", to=recipient.email,
                  subject=title, text=rendered.text, html=rendered.html, language=recipient.locale,
                  sender_name=branding.display_name, reply_to=branding.sender_address)
    throttle = None if announcement.category in MANDATORY else ctx.ports["mail_throttle_per_hour"]
    return Request(uuid.UUID(ctx.envelope.event_id), recipient.email, announcement.category, title,
                   recipient.user_id, announcement.tenant_id, throttle), email
