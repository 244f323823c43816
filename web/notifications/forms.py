"""HTML forms of the notifications context: marking notices read, and my preferences.

The preferences form is built from the categories: one pair of checkboxes per category
(``email-<category>``, ``in_app-<category>``); mandatory categories are shown on and cannot
be unticked (the domain refuses it, for the API too).
"""
from __future__ import annotations

from wtforms import BooleanField

from web.forms import PageForm
from web.i18n import _l


class ActionForm(PageForm):
    """A button that changes something (its CSRF token only)."""


class PreferencesForm(PageForm):
    """The digest; the categories' checkboxes are read from the posted form by name."""

    digest = BooleanField(_l("Daily summary of unread notices"))
