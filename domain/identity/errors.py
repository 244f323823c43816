"""Errors of the identity context."""
from __future__ import annotations

from domain.errors import Conflict, DomainError, Forbidden, NotFound


class EmailTaken(Conflict):
    """An account with this email already exists."""

    def __init__(self) -> None:
        super().__init__("is already registered", field="email")


class BadCredentials(DomainError):
    """Email and password do not match an active account."""

    status = 401

    def __init__(self) -> None:
        super().__init__("email or password is wrong", field="password")


class WrongPassword(DomainError):
    """The current password given to change it is wrong."""

    status = 422

    def __init__(self) -> None:
        super().__init__("is not your current password", field="current_password")


class ChooseTenant(DomainError):
    """The account belongs to several tenants and did not say which one."""

    status = 422

    def __init__(self, slugs: list[str]) -> None:
        super().__init__("you belong to several tenants; choose one of: " + ", ".join(slugs),
                         field="tenant")
        self.slugs = slugs


class BadExternalIdentity(DomainError):
    """An external provider's token that cannot be used to sign in."""

    status = 401


class MissingName(DomainError):
    """A new account needs a name."""

    status = 422

    def __init__(self) -> None:
        super().__init__("is required for a new account", field="name")


class UnverifiedEmail(Conflict):
    """An external provider vouches for an address whose local account never proved it owns
    it: linking by email would hand that account to whoever signs in at the provider, or
    hand the provider's person an account someone else made under their address."""

    def __init__(self) -> None:
        super().__init__("an account with this address exists but its address is not verified: "
                         "sign in with its password and verify it", field="email")


class OperatorNotLinked(Forbidden):
    """A platform operator's account is never linked to an external provider by its address:
    whoever holds that address at the provider would hold every tenant (operators get no
    password reset link for the same reason). They sign in with their password."""

    def __init__(self) -> None:
        super().__init__("this account signs in with its password, not through an external provider",
                         field="email")


class UnknownVerification(NotFound):
    """A verification link that is unknown, used or expired."""

    def __init__(self) -> None:
        super().__init__("this verification link is unknown, already used or expired", field="token")


class AlreadyVerified(Conflict):
    """The account's address is verified already: no new link is sent."""

    def __init__(self) -> None:
        super().__init__("is already verified", field="email")


class UnknownPasswordReset(NotFound):
    """A password reset link that is unknown, used or expired, or whose account changed its
    address or was deactivated since."""

    def __init__(self) -> None:
        super().__init__("this password reset link is unknown, already used or expired", field="token")
