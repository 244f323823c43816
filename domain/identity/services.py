"""Use cases of the identity context."""
from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain.errors import NotFound
from domain.iam import services as iam
from domain.identity.errors import BadCredentials, EmailTaken
from domain.identity.models import User
from domain.tenancy import queries as tenancy_queries

_hasher = PasswordHasher()
# Verified against when the account does not exist, so timing does not reveal it.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


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


def email_taken(session: Session, email: str) -> bool:
    """True if an account uses ``email``."""
    return session.scalar(select(func.count()).select_from(User).where(
        User.email == normalize_email(email))) != 0


def create_user(session: Session, *, email: str, name: str, password_hash: str | None,
                is_operator: bool = False) -> User:
    """Create an account; EmailTaken if the email is in use."""
    if email_taken(session, email):
        raise EmailTaken()
    user = User(id=uuid.uuid4(), email=normalize_email(email), name=name,
                password_hash=password_hash, is_operator=is_operator)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, email: str, password: str) -> User:
    """The active user with these credentials, or BadCredentials."""
    user = session.scalar(select(User).where(User.email == normalize_email(email)))
    try:
        _hasher.verify(user.password_hash if user and user.password_hash else _DUMMY_HASH, password)
    except (VerifyMismatchError, InvalidHashError):
        raise BadCredentials() from None
    if user is None or not user.active:
        raise BadCredentials()
    return user



@dataclass(frozen=True)
class SignIn:
    """Who signed in, for which tenant (None: no tenant, e.g. a platform operator)."""

    user_id: uuid.UUID
    tenant_id: uuid.UUID | None
    operator: bool


def sign_in(session: Session, email: str, password: str, tenant_slug: str | None) -> SignIn:
    """Check the credentials and that the account belongs to the tenant it asks for."""
    user = authenticate(session, email, password)
    tenant_id = None
    if tenant_slug is not None:
        tenant_id = tenancy_queries.tenant_id_by_slug(session, tenant_slug)
        if tenant_id is None or not iam.is_member(session, user.id, tenant_id):
            raise NotFound("no such tenant for this account", field="tenant")
    return SignIn(user.id, tenant_id, user.is_operator)
