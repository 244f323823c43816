"""Use cases of the identity context."""
from __future__ import annotations

import base64
import functools
import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import any_, bindparam, delete, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain import links
from domain.db.base import utcnow
from domain.db.sql import Read, Sql, read_one, violated_constraint
from domain.errors import NotFound
from domain.iam import services as iam
from domain.identity.errors import (
    BadCredentials,
    BadExternalIdentity,
    ChooseTenant,
    EmailTaken,
    MissingName,
    OperatorNotLinked,
    UnknownVerification,
    UnverifiedEmail,
    WrongPassword,
)
from domain.identity.models import EmailedLink, EmailVerification, ExternalIdentity, PasswordReset, User
from domain.tenancy import queries as tenancy_queries

if TYPE_CHECKING:  # the OIDC client (requests, joserfc) is the web tier's; workers never load it
    from domain.identity.oidc import ExternalClaims

# PASSWORD_HASH_PROFILE's names of argon2-cffi's parameter profiles.
PASSWORD_PROFILES = {
    "rfc9106-low-memory": profiles.RFC_9106_LOW_MEMORY,
    "rfc9106-high-memory": profiles.RFC_9106_HIGH_MEMORY,
    "cheapest": profiles.CHEAPEST,
}
_hasher = PasswordHasher.from_parameters(PASSWORD_PROFILES["rfc9106-low-memory"])


def use_password_profile(name: str) -> None:
    """Hash new passwords with the named profile from now on (the process's configuration;
    stored hashes verify with the parameters they carry)."""
    global _hasher  # noqa: PLW0603 - one hasher per process, set at its start
    _hasher = PasswordHasher.from_parameters(PASSWORD_PROFILES[name])
    _dummy_hash.cache_clear()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the account does not exist, so timing does not reveal it.
    Made on first use: an argon2 hash costs every importing process (web, each worker
    pool, beat) a fifth of a second otherwise."""
    return _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


def _password_matches(password_hash: str | None, password: str) -> bool:
    """True if ``password`` matches ``password_hash``. An account without a password (one
    made through an external provider) matches nothing, after the same argon2 work."""
    try:
        _hasher.verify(password_hash or _dummy_hash(), password)
    except (VerifyMismatchError, InvalidHashError):
        return False
    return bool(password_hash)


class PasswordSealer:
    """Encrypts a password between the request and the worker that hashes it.

    Hashing with argon2 costs tens of milliseconds of CPU, so the web tier only seals the
    password (Fernet, key derived from SECRET_KEY) and the worker that creates the account
    unseals and hashes it, then forgets the sealed copy.
    """

    def __init__(self, secret_key: str) -> None:
        digest = hashlib.sha256(b"allotment.password-sealer:" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, password: str) -> str:
        """An encrypted, authenticated copy of ``password``."""
        return self._fernet.encrypt(password.encode()).decode()

    def unseal(self, sealed: str) -> str | None:
        """The password, or None if the token is not ours (e.g. SECRET_KEY rotated)."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            return None


def normalize_email(email: str) -> str:
    """The form emails are stored and compared in."""
    return email.strip().lower()


def _user_with_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normalize_email(email)))


def create_user(session: Session, *, email: str, name: str, password_hash: str | None,
                is_operator: bool = False, email_verified: bool = False) -> User:
    """Create an account; EmailTaken if the email is in use. ``email_verified`` only where
    the caller holds proof that the person receives mail at ``email`` (an invitation's
    token, a provider's verified email): nothing else links to an account by its email."""
    if _user_with_email(session, email) is not None:
        raise EmailTaken()
    user = User(id=uuid.uuid4(), email=normalize_email(email), name=name,
                password_hash=password_hash, is_operator=is_operator,
                email_verified_at=utcnow() if email_verified else None)
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent request took the email since the check
        if violated_constraint(exc) == "uq_users_email":
            raise EmailTaken() from None
        raise
    return user


def authenticate(session: Session, email: str, password: str, *, writes_user: bool = False) -> User:
    """The active user with these credentials, or BadCredentials.

    The password is checked against an unlocked read, so that argon2's tens of milliseconds
    hold no lock. Then the account's row is read again under a lock kept until the
    transaction ends (FOR SHARE; FOR NO KEY UPDATE for a caller that then ``writes_user``, so
    that two such callers queue instead of deadlocking), and the sign-in stands only if the
    hash it checked is still the account's. A password change or reset, which locks the row
    before it revokes the account's sessions, either commits first (this sign-in then finds
    another hash, or waits for that commit and then finds it) and refuses it, or waits for
    this sign-in to commit its session and then revokes it too. Without the lock a sign-in
    that checked the old password could commit its session just after the revocation and
    keep it.
    """
    seen = session.execute(select(User.id, User.password_hash, User.active)
                           .where(User.email == normalize_email(email))).first()
    if not _password_matches(seen.password_hash if seen else None, password) or (
            seen is None or not seen.active):
        raise BadCredentials()
    user = locked_user(session, seen.id, writes=writes_user)
    if (user is None or not user.active or user.password_hash != seen.password_hash
            or user.email != normalize_email(email)):
        raise BadCredentials()  # changed (or deactivated) since it was checked
    return user


@dataclass(frozen=True)
class SignIn:
    """Who signed in, for which tenant (None: no tenant, e.g. a platform operator)."""

    user_id: uuid.UUID
    tenant_id: uuid.UUID | None
    operator: bool


def choose_tenant(session: Session, user_id: uuid.UUID, operator: bool,
                  tenant_slug: str | None) -> uuid.UUID | None:
    """The tenant a sign-in acts in: the one asked for (the user must be an active member
    of it), else the user's only tenant. A member of several must choose; an operator or a
    user of no tenant yet (about to accept an invitation) gets a token for no tenant."""
    if tenant_slug is not None:
        tenant_id = tenancy_queries.tenant_id_by_slug(session, tenant_slug)
        if tenant_id is None or not iam.is_member(session, user_id, tenant_id):
            raise NotFound("no such tenant for this account", field="tenant")
        return tenant_id
    if operator:  # operators act across tenants unless they ask for one
        return None
    tenants = iam.tenants_of(session, user_id)
    if len(tenants) == 1:
        return tenants[0]
    if len(tenants) > 1:
        slugs = sorted(tenancy_queries.slugs_of(session, tenants).values())
        raise ChooseTenant(slugs)
    return None


def sign_in(session: Session, email: str, password: str, tenant_slug: str | None) -> SignIn:
    """Check the credentials and pick the tenant the tokens will carry."""
    user = authenticate(session, email, password)
    return SignIn(user.id, choose_tenant(session, user.id, user.is_operator, tenant_slug),
                  user.is_operator)


def switch_tenant(session: Session, user_id: uuid.UUID, tenant_slug: str) -> SignIn:
    """A signed-in user moves to another of their tenants (a new session is started). The
    account's row stays locked (FOR SHARE) until the new session commits, as a sign-in's."""
    user = _active_user(session, user_id, writes=False)
    return SignIn(user.id, choose_tenant(session, user.id, user.is_operator, tenant_slug),
                  user.is_operator)


def _active_user(session: Session, user_id: uuid.UUID, *, writes: bool) -> User:
    """The active account, read afresh under a row lock kept until the transaction ends (FOR
    SHARE, or FOR NO KEY UPDATE for a caller that ``writes`` it): a password change, a reset
    or a deactivation that commits first is seen, and one that comes after waits for this
    transaction (see ``authenticate``)."""
    user = locked_user(session, user_id, writes=writes)
    if user is None or not user.active:
        raise BadCredentials()
    return user


def locked_user(session: Session, user_id: uuid.UUID, *, writes: bool) -> User | None:
    """The account read afresh under a row lock kept until the transaction ends: FOR SHARE,
    or FOR NO KEY UPDATE for a caller that ``writes`` it."""
    return session.scalar(select(User).where(User.id == user_id)
                          .with_for_update(read=not writes, key_share=writes)
                          .execution_options(populate_existing=True))


def change_password(session: Session, user_id: uuid.UUID, current: str, new: str) -> None:
    """Replace the password after checking the current one (the caller revokes sessions);
    the account's live password reset links are spent: whoever holds one can no longer
    override the password its owner just chose.

    Both argon2 steps (checking the current password, hashing the new one) run before the
    account's row is locked; under the lock the change goes ahead only if the hash it checked
    is still the account's, so a reset or another change that committed meanwhile is never
    overwritten (see ``authenticate``)."""
    seen = session.execute(select(User.password_hash, User.active).where(User.id == user_id)).first()
    if seen is None or not seen.active:
        raise BadCredentials()
    if not _password_matches(seen.password_hash, current):
        raise WrongPassword()
    new_hash = hash_password(new)
    user = _active_user(session, user_id, writes=True)
    if user.password_hash != seen.password_hash:
        raise WrongPassword()  # no longer the current password: it changed since it was checked
    user.password_hash = new_hash
    session.flush()
    spend_password_resets(session, user.id)


def set_password(session: Session, user_id: uuid.UUID, new: str) -> None:
    """Set the password without the current one (an operator's own CLI; the caller revokes
    sessions); live password reset links are spent, as by ``change_password``."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user", field="user_id")
    user.password_hash = hash_password(new)
    session.flush()
    spend_password_resets(session, user.id)


def set_account_active(session: Session, user_id: uuid.UUID, active: bool) -> None:
    """Deactivate (or reactivate) an account everywhere (platform operators). Deactivating
    spends its live password reset links, so a reactivation does not bring them back."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user", field="user_id")
    user.active = active
    session.flush()
    if not active:
        spend_password_resets(session, user.id)


def spend_password_resets(session: Session, user_id: uuid.UUID) -> list[uuid.UUID]:
    """Mark the account's live (unused, unexpired) password reset links used; their ids. Run
    under the account's row lock (its update, or ``recovery.reset_password``'s lock): every
    use of its links queues there first, so two never deadlock on each other's link rows."""
    now = utcnow()
    return list(session.scalars(
        update(PasswordReset).where(PasswordReset.user_id == user_id, PasswordReset.used_at.is_(None),
                                    PasswordReset.expires_at > now)
        .values(used_at=now).returning(PasswordReset.id)))


@dataclass(frozen=True)
class UserRow:
    """A user as member lists show them."""

    id: uuid.UUID
    email: str
    name: str
    active: bool
    operator: bool


# Built once: every notification reads its recipients' accounts with it.
_USERS_BY_ID = Sql(select(User.id, User.email, User.name, User.active, User.is_operator).where(
    User.id == any_(bindparam("ids", type_=ARRAY(User.id.type)))))


def users_read(user_ids: list[uuid.UUID]) -> Read[dict[uuid.UUID, UserRow]]:
    """``users_by_id`` as a read to make with others in one round trip (``read_together``)."""
    return Read(_USERS_BY_ID, {"ids": list(user_ids)}, lambda rows: {row[0]: UserRow(*row) for row in rows})


def users_by_id(session: Session, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, UserRow]:
    """Name and email of each user in ``user_ids``."""
    if not user_ids:
        return {}
    return read_one(session, users_read(user_ids))


def user_by_email(session: Session, email: str) -> UserRow | None:
    """The account with this email, if any."""
    user = _user_with_email(session, email)
    return UserRow(user.id, user.email, user.name, user.active, user.is_operator) if user else None


def mark_verified(user: User) -> None:
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()


def accept_invitation(session: Session, token: str, *, name: str, password: str) -> SignIn:
    """Join a tenant through an invitation: a new account is created with ``password``;
    an existing one must prove it knows its password. Returns the sign-in to the tenant.

    Either way the account's address is verified: the invitee used the token that only the
    email to that address carried."""
    view = iam.invitation(session, token, lock=True)
    existing = user_by_email(session, view.email)
    if existing is None:
        if not name:
            raise MissingName()
        user = create_user(session, email=view.email, name=name, password_hash=hash_password(password),
                           email_verified=True)
    else:
        user = authenticate(session, view.email, password, writes_user=True)
    iam.accept(session, token, user.id)
    mark_verified(user)
    session.flush()
    return SignIn(user.id, view.tenant_id, user.is_operator)


# --- proving an account's address ----------------------------------------------------------

@dataclass(frozen=True)
class LinkView:
    """A live emailed link (a verification, a password reset) as its page shows it: its
    account, the address it was sent to, until when it works."""

    id: uuid.UUID
    user_id: uuid.UUID
    email: str
    expires_at: datetime


def start_email_verification(session: Session, user_id: uuid.UUID,
                             lifetime: timedelta) -> tuple[LinkView, str]:
    """Record a verification link for the account's current address; return it and its
    token, which only the email to that address may carry (the database keeps its hash)."""
    return start_link(session, EmailVerification, user_id, lifetime)


def start_link(session: Session, link: type[EmailedLink], user_id: uuid.UUID,
               lifetime: timedelta) -> tuple[LinkView, str]:
    """Record a link of the ``link`` table for the account's current address, working for
    ``lifetime``; return it and its token (the database keeps only its hash)."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user", field="user_id")
    token = links.new_token()
    row = link(id=uuid.uuid4(), user_id=user.id, email=user.email, token_hash=links.token_hash(token),
               expires_at=utcnow() + lifetime)
    session.add(row)
    session.flush()
    return LinkView(row.id, user.id, row.email, row.expires_at), token


def email_verification(session: Session, token: str, *, lock: bool = False) -> LinkView:
    """The live verification behind ``token``; UnknownVerification if unknown, used,
    expired, or the account's address is no longer the one it was sent to.

    ``lock`` holds the row until the transaction ends: concurrent uses queue behind the
    first one and then find it used.
    """
    found = live_link(session, EmailVerification, token, lock=lock)
    if found is None:
        raise UnknownVerification()
    return found[0]


def live_link(session: Session, link: type[EmailedLink], token: str, *,
              lock: bool = False) -> tuple[LinkView, bool] | None:
    """The link of the ``link`` table behind ``token``, and whether its account is active;
    None if it is unknown, used, expired, or its account no longer has the address it was
    sent to. ``lock`` holds the link's row until the transaction ends."""
    query = (select(link, User.email, User.active).join(User, User.id == link.user_id)
             .where(link.token_hash == links.token_hash(token)))
    if lock:
        query = query.with_for_update(of=link)
    row = session.execute(query).one_or_none()
    if row is None:
        return None
    found, current_email, active = row
    if found.used_at is not None or found.expires_at <= utcnow() or found.email != current_email:
        return None
    return LinkView(found.id, found.user_id, found.email, found.expires_at), active


def verify_email(session: Session, token: str, password: str) -> uuid.UUID:
    """Use a verification link once: the account's address is verified. The account's
    password is asked for too, so that the address and the account are proved to be one
    person's: someone who signed up under another person's address cannot verify it (no
    email), and the address's owner cannot adopt an account someone else made and holds the
    password of. A wrong password changes nothing (the link stays usable). Returns the user."""
    view = email_verification(session, token, lock=True)
    user = authenticate(session, view.email, password, writes_user=True)
    if user.id != view.user_id:  # the address changed hands since the link was sent
        raise UnknownVerification()
    used = session.execute(
        update(EmailVerification).where(EmailVerification.id == view.id,
                                        EmailVerification.used_at.is_(None))
        .values(used_at=utcnow()).returning(EmailVerification.id)).first()
    if used is None:
        raise UnknownVerification()
    mark_verified(user)
    session.flush()
    return user.id


def email_verified(session: Session, user_id: uuid.UUID) -> bool:
    """True if the account's address is verified."""
    return session.scalar(select(User.email_verified_at).where(User.id == user_id)) is not None


def prune_email_verifications(session: Session, *, older_than: datetime) -> int:
    """Delete the verification links used or expired before ``older_than`` (they can never
    verify anything again); how many. Live links, and dead ones younger than that, stay."""
    return prune_emailed_links(session, EmailVerification, older_than=older_than)


def prune_emailed_links(session: Session, link: type[EmailedLink], *, older_than: datetime) -> int:
    """Delete the links of the ``link`` table used or expired before ``older_than``; how many."""
    result = session.execute(delete(link).where(or_(link.used_at < older_than, link.expires_at < older_than)))
    return result.rowcount or 0  # type: ignore[attr-defined]


# --- external identities -------------------------------------------------------------------

def link_external_identity(session: Session, *, issuer: str, subject: str, email: str | None,
                           email_verified: bool, name: str | None) -> User:
    """The account behind an external provider's (issuer, subject): already linked, else
    the account with that email if both sides verified it (the provider's ``email_verified``
    and the account's own ``email_verified_at``), else a new account (no password) whose
    address the provider proved.

    An existing account whose address it never proved is refused (UnverifiedEmail), and
    nothing is written: otherwise whoever made an account under someone else's address
    would get that person attached to it at their first sign-in through the provider.
    A platform operator's account is never linked by its address, nor signed in through a
    link (OperatorNotLinked): operators sign in with their password.

    Two first sign-ins at once (two tabs) both find no link: the second waits for the
    first's account or link to commit, at the address's or the link's unique key, and then
    uses them.
    """
    linked = _linked_user(session, issuer, subject)
    if linked is not None:
        user = _active_user(session, linked, writes=False)
        if user.is_operator:  # linked by address before that was refused
            raise OperatorNotLinked()
        return user
    if not email or not email_verified:
        raise BadExternalIdentity("the provider did not vouch for an email address", field="email")
    user = _user_with_email(session, email) or _new_external_user(session, email, name)
    if not user.active:
        raise BadCredentials()
    if user.is_operator:
        raise OperatorNotLinked()
    if user.email_verified_at is None:
        raise UnverifiedEmail()
    session.execute(pg_insert(ExternalIdentity).values(issuer=issuer, subject=subject, user_id=user.id)
                    .on_conflict_do_nothing(index_elements=["issuer", "subject"]))
    linked = _linked_user(session, issuer, subject)  # ours, or the one that committed first
    return user if linked == user.id or linked is None else _active_user(session, linked, writes=False)


def _linked_user(session: Session, issuer: str, subject: str) -> uuid.UUID | None:
    return session.scalar(select(ExternalIdentity.user_id).where(
        ExternalIdentity.issuer == issuer, ExternalIdentity.subject == subject))


def _new_external_user(session: Session, email: str, name: str | None) -> User:
    """A new account (no password) for an address the provider proved; or, when another
    request made one with that address meanwhile (this one waited for it), that account."""
    try:
        with session.begin_nested():
            return create_user(session, email=email, name=(name or email)[:200], password_hash=None,
                               email_verified=True)
    except EmailTaken:
        made = _user_with_email(session, email)
        if made is None:
            raise
        return made


def sign_in_external(session: Session, claims: ExternalClaims, tenant_slug: str | None) -> SignIn:
    """The account an external provider's verified claims belong to (linked on first use),
    and the tenant its tokens will carry."""
    user = link_external_identity(session, issuer=claims.issuer, subject=claims.subject,
                                  email=claims.email, email_verified=claims.email_verified,
                                  name=claims.name)
    return SignIn(user.id, choose_tenant(session, user.id, user.is_operator, tenant_slug),
                  user.is_operator)
