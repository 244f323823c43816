"""Whom a publication is for: everyone, an org unit (with or without its sub-units), or a
list of people; checked when it is written and resolved to people when it goes out.

Everything about people comes from employment's public queries, never its tables; the
accounts that receive notices come from IAM (the tenant's active members) and identity
(their account emails): an employee is a member's account when the work email is that
account's email.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from domain.employment import queries as employment
from domain.errors import NotFound
from domain.iam import services as iam
from domain.identity import services as identity
from domain.publications.errors import InvalidInput
from domain.publications.models import AUDIENCES
from domain.text import CONTROL

MAX_PEOPLE = 10_000


class AudienceGone(Exception):
    """The org unit an audience names no longer exists (publishing it fails, with the reason)."""


@dataclass(frozen=True)
class Audience:
    """Whom a publication is for, as asked."""

    kind: str = "everyone"
    org_unit_id: uuid.UUID | None = None
    sub_units: bool = False
    employee_ids: tuple[uuid.UUID, ...] = ()
    # People named by work email (the HTML form): resolved to their ids by ``checked``.
    employee_emails: tuple[str, ...] = ()


def checked(db: Session, audience: Audience) -> Audience:
    """``audience`` with its people deduplicated, every id proven the tenant's (404 naming the
    field otherwise: another tenant's unit or employee is as unknown as a made-up one)."""
    if audience.kind not in AUDIENCES:
        raise InvalidInput(f"must be one of {', '.join(AUDIENCES)}", field="audience.kind")
    if audience.kind != "org_unit" and (audience.org_unit_id is not None or audience.sub_units):
        raise InvalidInput("only an org_unit audience names a unit", field="audience.org_unit_id")
    if audience.kind != "people" and (audience.employee_ids or audience.employee_emails):
        raise InvalidInput("only a people audience lists employees", field="audience.employee_ids")
    if audience.kind == "org_unit":
        return _checked_unit(db, audience)
    if audience.kind == "people":
        named = employee_ids_by_email(db, audience.employee_emails)
        return Audience("people", employee_ids=_checked_people(db, (*audience.employee_ids, *named)))
    return Audience("everyone")


def _checked_unit(db: Session, audience: Audience) -> Audience:
    if audience.org_unit_id is None:
        raise InvalidInput("an org_unit audience needs its unit", field="audience.org_unit_id")
    try:
        employment.org_unit(db, audience.org_unit_id)
    except NotFound:
        raise NotFound("no such org unit", field="audience.org_unit_id") from None
    return audience


def _checked_people(db: Session, ids: Sequence[uuid.UUID]) -> tuple[uuid.UUID, ...]:
    unique = tuple(dict.fromkeys(ids))
    if not unique:
        raise InvalidInput("a people audience needs at least one employee", field="audience.employee_ids")
    if len(unique) > MAX_PEOPLE:
        raise InvalidInput(f"at most {MAX_PEOPLE:,} people", field="audience.employee_ids")
    known = employment.existing_ids(db, unique)
    missing = [i for i in unique if i not in known]
    if missing:
        raise NotFound(f"no such employee: {missing[0]}", field="audience.employee_ids")
    return unique


def employee_ids_by_email(db: Session, emails: Iterable[str]) -> tuple[uuid.UUID, ...]:
    """The employees with these work emails, in order (an unknown email is refused by name)."""
    wanted = [e.strip().lower() for e in emails if e.strip()]
    if any(CONTROL.search(email) for email in wanted):
        raise InvalidInput("a work email has no control characters", field="audience.employee_ids")
    found = employment.ids_by_email(db, wanted)
    for email in wanted:
        if email not in found:
            raise NotFound(f"no employee has the work email {email}", field="audience.employee_ids")
    return tuple(dict.fromkeys(found[e] for e in wanted))


def emails_of(db: Session, employee_ids: Sequence[uuid.UUID]) -> list[str]:
    """The work emails of the employees that still exist, in order (for an edit form)."""
    people = employment.people(db, employee_ids)
    return [people[i].work_email for i in employee_ids if i in people]


def resolve(db: Session, audience: Audience) -> list[uuid.UUID]:
    """The employees the audience reaches now (AudienceGone if its unit was deleted)."""
    if audience.kind == "everyone":
        return employment.everyone(db)
    if audience.kind == "org_unit":
        assert audience.org_unit_id is not None
        try:
            return employment.people_in_unit(db, audience.org_unit_id, sub_units=audience.sub_units)
        except NotFound:
            raise AudienceGone("the org unit of its audience no longer exists") from None
    present = employment.existing_ids(db, audience.employee_ids)
    return [i for i in audience.employee_ids if i in present]


def accounts_of(db: Session, management: Session, tenant_id: uuid.UUID,
                employee_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID | None]:
    """Employee id -> the user id of the tenant's active member whose account email is the
    employee's work email (None: no such account)."""
    people = employment.people(db, employee_ids)
    members = [m.user_id for m in iam.list_members(management, tenant_id) if m.active]
    users = identity.users_by_id(management, members)
    by_email = {u.email.lower(): u.id for u in users.values() if u.active}
    return {i: by_email.get(people[i].work_email.lower()) if i in people else None for i in employee_ids}


def reader_employee_ids(db: Session, management: Session, user_id: uuid.UUID) -> list[uuid.UUID]:
    """The employee records of a user in the tenant (by their account email; usually one)."""
    user = identity.users_by_id(management, [user_id]).get(user_id)
    if user is None:
        return []
    return list(employment.ids_by_email(db, [user.email]).values())
