"""HTML forms of the notifications context: marking notices read, and my preferences.

The preferences form is built from the categories: one pair of checkboxes per category
(``email-<category>``, ``in_app-<category>``); mandatory categories are shown on and cannot
be unticked (the domain refuses it, for the API too).
"""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField


class ActionForm(FlaskForm):
    """A button that changes something (its CSRF token only)."""


class PreferencesForm(FlaskForm):
    """The digest; the categories' checkboxes are read from the posted form by name."""

    digest = BooleanField("Daily summary of unread notices")
