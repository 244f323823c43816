"""Who an event reaches, and how: each person's address, name, language and choices.

An event names people by user id (and sometimes carries their address and name, as the
welcome does). The management database says the rest: the account (an inactive account
gets nothing), its language (translations) and its choices for the event's category. Of an
event of no tenant, or an account's own message, a person the database does not know still
gets the in-app notice, and the email when the event carries an address.

A tenant's event reaches only the people it names who are, when it is handled, active
members of that tenant (IAM), or platform operators: a member deactivated since the event,
or someone of another tenant, gets neither notice nor email. An invitee, named by address
only, is not a member yet and is not checked; nor is an account's own message (its address
verification), which concerns the account and not a tenant. An operator who is not a
member gets the email only: no page of a tenant they cannot enter would show them a notice.
(Past the hourly rate, a throttled email keeps its notice for the digest, as everyone's does,
and no digest of theirs covers that tenant.)
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from domain.db.sql import read_together
from domain.iam import services as iam
from domain.identity import services as identity
from domain.notifications.preferences import Choice, choices_read
from domain.translations import services as translations
from domain.translations.catalogues import Catalogues

ADMIN_ROLES = frozenset({"owner", "admin"})


@dataclass(frozen=True)
class Person:
    """Someone an event names, with what the event itself knows of them."""

    user_id: uuid.UUID | None
    email: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Recipient:
    """A person an event reaches: where, in which language, through which channels."""

    user_id: uuid.UUID | None
    email: str | None  # None: no address known, the notice only
    name: str
    locale: str
    email_on: bool
    in_app: bool


def resolve(session: Session, catalogues: Catalogues, people: list[Person], category: str,
            member_tenant: uuid.UUID | None = None) -> list[Recipient]:
    """The recipients of ``people`` for an event of ``category`` (each person once);
    ``member_tenant``: of those named by user id, only its active members and operators."""
    user_ids = [p.user_id for p in people if p.user_id is not None]
    users: dict[uuid.UUID, identity.UserRow] = {}
    locales: dict[uuid.UUID, str] = {}
    choices: dict[uuid.UUID, Choice] = {}
    members: set[uuid.UUID] | None = None
    if user_ids:  # accounts, languages, choices and standing in the tenant in one round trip
        chosen_read = choices_read(user_ids, category)  # None: every channel on, whatever they chose
        members_read = (iam.active_members_read(member_tenant, user_ids)
                        if member_tenant is not None else None)
        users, locales, *rest = read_together(
            session, identity.users_read(user_ids), translations.locales_read(user_ids),
            *(read for read in (chosen_read, members_read) if read is not None))
        choices = rest.pop(0) if chosen_read is not None else {}
        members = rest.pop(0) if members_read is not None else None
    unknown = [p.email for p in people if p.user_id is None and p.email]
    for email in unknown:  # an invitee who already has an account reads in their language
        found = identity.user_by_email(session, email)
        if found is not None:
            users[found.id] = found
            locales.update(translations.user_locales(session, [found.id]))
    by_email = {u.email: u for u in users.values()}
    found_people: list[Recipient] = []
    seen: set[object] = set()
    for person in people:
        user = users.get(person.user_id) if person.user_id else by_email.get(person.email or "")
        if (user is not None and not user.active) or (person.user_id or person.email) in seen:
            continue
        outsider = members is not None and person.user_id is not None and person.user_id not in members
        if outsider and not (user is not None and user.operator):
            continue  # not (or no longer) one of the tenant's people
        seen.add(person.user_id or person.email)
        choice = choices.get(person.user_id, Choice()) if person.user_id else Choice(in_app=False)
        if outsider:  # an operator: by email only, since no page of the tenant is theirs to read
            choice = Choice(email=choice.email, in_app=False)
        locale = translations.locale_of(catalogues, locales.get(user.id) if user else None)
        email = user.email if user is not None else person.email
        name = user.name if user is not None else (person.name or email or "")
        found_people.append(Recipient(person.user_id, email, name, locale, choice.email, choice.in_app))
    return found_people


def admins_of(session: Session, tenant_id: uuid.UUID) -> list[Person]:
    """The tenant's active owners and admins."""
    return [Person(m.user_id) for m in iam.list_members(session, tenant_id)
            if m.active and ADMIN_ROLES & set(m.roles)]


def members_of(session: Session, tenant_id: uuid.UUID) -> list[Person]:
    """The tenant's active members."""
    return [Person(m.user_id) for m in iam.list_members(session, tenant_id) if m.active]
