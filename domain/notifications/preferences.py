"""Each user's choices: email and in-app per category, and the daily digest.

No row means on (email and in-app) and no digest. Mandatory categories (security, billing)
cannot be switched off: asking to is refused naming the field, and nothing is changed.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.orm import Session

from domain.db.base import utcnow
from domain.db.sql import Read, Sql, read_one
from domain.notifications.categories import CATEGORIES, MANDATORY
from domain.notifications.errors import InvalidPreference
from domain.notifications.models import NotificationPreference, NotificationSettings

CHANNELS = ("email", "in_app")


@dataclass(frozen=True)
class Choice:
    """Whether one category reaches a user by email and in the app."""

    email: bool = True
    in_app: bool = True


@dataclass(frozen=True)
class CategoryPreference:
    """One category as the preferences page and API show it."""

    category: str
    email: bool
    in_app: bool
    mandatory: bool


@dataclass(frozen=True)
class Preferences:
    """Every category's choice and the digest."""

    categories: list[CategoryPreference]
    digest: bool


# Built once: every notification reads its recipients' choices with it.
_CHOICES = Sql(select(NotificationPreference.user_id, NotificationPreference.email,
                      NotificationPreference.in_app)
               .where(NotificationPreference.user_id == any_(
                          bindparam("ids", type_=ARRAY(NotificationPreference.user_id.type))),
                      NotificationPreference.category == bindparam("category")))


def choices_read(user_ids: Iterable[uuid.UUID], category: str) -> Read[dict[uuid.UUID, Choice]] | None:
    """``choices_for`` as a read to make with others in one round trip (``read_together``);
    None when there is nothing to read: a mandatory category is on for everyone."""
    if category in MANDATORY:
        return None
    ids = list(user_ids)

    def parse(rows: Sequence[Any]) -> dict[uuid.UUID, Choice]:
        chosen = {user_id: Choice(email, in_app) for user_id, email, in_app in rows}
        return {user_id: chosen.get(user_id, Choice()) for user_id in ids}

    return Read(_CHOICES, {"ids": ids, "category": category}, parse)


def choices_for(session: Session, user_ids: Iterable[uuid.UUID], category: str) -> dict[uuid.UUID, Choice]:
    """What each of ``user_ids`` chose for ``category`` (mandatory ones are always on)."""
    ids = list(user_ids)
    read = choices_read(ids, category) if ids else None
    return read_one(session, read) if read is not None else {user_id: Choice() for user_id in ids}


def preferences_of(session: Session, user_id: uuid.UUID) -> Preferences:
    """The user's choices for every category, and the digest."""
    rows = {p.category: p for p in session.scalars(select(NotificationPreference)
                                                   .where(NotificationPreference.user_id == user_id))}
    categories = []
    for category in CATEGORIES:
        row, mandatory = rows.get(category), category in MANDATORY
        email = True if mandatory or row is None else row.email
        in_app = True if mandatory or row is None else row.in_app
        categories.append(CategoryPreference(category, email, in_app, mandatory))
    digest = session.scalar(select(NotificationSettings.digest)
                            .where(NotificationSettings.user_id == user_id))
    return Preferences(categories, bool(digest))


def _checked(changes: Mapping[str, Mapping[str, bool]]) -> None:
    for category, channels in changes.items():
        if category not in CATEGORIES:
            raise InvalidPreference(f"unknown category; known: {', '.join(CATEGORIES)}",
                                    field=f"categories.{category}")
        for channel, on in channels.items():
            if channel not in CHANNELS:
                raise InvalidPreference("only email and in_app can be chosen",
                                        field=f"categories.{category}.{channel}")
            if category in MANDATORY and not on:
                raise InvalidPreference(f"{category} notices are mandatory and cannot be switched off",
                                        field=f"categories.{category}.{channel}")


def set_preferences(session: Session, user_id: uuid.UUID, changes: Mapping[str, Mapping[str, bool]],
                    digest: bool | None = None) -> Preferences:
    """Change some categories' channels (and the digest); every change is checked first."""
    _checked(changes)
    current = {p.category: p for p in preferences_of(session, user_id).categories}
    now = utcnow()
    for category, channels in changes.items():
        email = channels.get("email", current[category].email)
        in_app = channels.get("in_app", current[category].in_app)
        values = {"email": email, "in_app": in_app, "updated_at": now}
        session.execute(insert(NotificationPreference).values(user_id=user_id, category=category, **values)
                        .on_conflict_do_update(index_elements=["user_id", "category"], set_=values))
    if digest is not None:
        session.execute(insert(NotificationSettings).values(user_id=user_id, digest=digest, updated_at=now)
                        .on_conflict_do_update(index_elements=["user_id"],
                                               set_={"digest": digest, "updated_at": now}))
    return preferences_of(session, user_id)


def digest_subscribers(session: Session) -> list[uuid.UUID]:
    """Every user who asked for the daily digest."""
    return list(session.scalars(select(NotificationSettings.user_id)
                                .where(NotificationSettings.digest.is_(True))))
