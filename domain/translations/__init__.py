"""Translations: every product string in gettext catalogues (Babel), per-tenant overrides, and
each user's language.

Owns: translation_overrides and user_locales (management database); the catalogues under
``translations/`` (one ``messages.po``/``.mo`` per locale, ``messages.pot`` the template).
A string is looked up as the tenant's override for the locale, else the locale's catalogue,
else the default locale's, else the key itself (``Translator``). Pages and emails use the
user's language: their preference, else what the browser asks for, else the default.
No messages in or out.
"""
