"""The kinds of notices a person can receive, and which of them cannot be switched off."""
from __future__ import annotations

from domain.translations.translator import N_

# Category -> its name on the preferences page.
CATEGORIES: dict[str, str] = {
    "welcome": N_("Welcome messages"),
    "security": N_("Security and invitations"),
    "billing": N_("Billing and trial"),
    "tenancy": N_("Organisation changes"),
    "assets": N_("Uploaded files"),
    "publications": N_("Publications"),
}
# Security and billing reach their people whatever they chose (issue 5).
MANDATORY: frozenset[str] = frozenset({"security", "billing"})
# The daily summary: not a category of events, but mails like one (never throttled).
DIGEST = "digest"
