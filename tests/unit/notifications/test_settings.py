"""Settings of notifications and translations: the mail transport and its options, throttle,
digest hour, default locale, trials; each bad value refused naming its variable."""
from __future__ import annotations

import pytest

from config.settings import SettingsError, load_settings
from domain.bootstrap import build_mailer
from domain.notifications.mail import MaildirMailer
from domain.notifications.ses import SesMailer
from domain.notifications.smtp import SmtpMailer

KEY = {"SECRET_KEY": "unit-test-secret", "VAR_DIR": "var/unit-notifications"}  # nothing is written there


def test_defaults_keep_mail_in_the_maildir_in_english() -> None:
    settings = load_settings(KEY)
    assert settings.mail_transport == "maildir" and isinstance(build_mailer(settings), MaildirMailer)
    assert (settings.mail_throttle_per_hour, settings.digest_hour, settings.default_locale) == (30, 7, "en")
    assert (settings.smtp_port, settings.smtp_starttls, settings.smtp_ssl) == (587, True, False)
    assert (settings.trial_days, settings.trial_reminder_days) == (30, 7)


def test_each_transport_is_built_from_its_settings() -> None:
    smtp = build_mailer(load_settings({**KEY, "MAIL_TRANSPORT": "smtp", "SMTP_HOST": "mail.example",
                                       "SMTP_PORT": "465", "SMTP_SSL": "true", "SMTP_USERNAME": "u",
                                       "SMTP_PASSWORD": "p"}))
    assert isinstance(smtp, SmtpMailer)
    assert (smtp.host, smtp.port, smtp.use_ssl) == ("mail.example", 465, True)
    ses = build_mailer(load_settings({**KEY, "MAIL_TRANSPORT": "ses", "SES_REGION": "eu-west-1",
                                      "SES_ENDPOINT_URL": "http://127.0.0.1:4566"}))
    assert isinstance(ses, SesMailer)
    assert (ses.region, ses.endpoint_url) == ("eu-west-1", "http://127.0.0.1:4566")


@pytest.mark.parametrize(("env", "variable"), [
    ({"MAIL_TRANSPORT": "pigeon"}, "MAIL_TRANSPORT"),
    ({"MAIL_TRANSPORT": "smtp"}, "SMTP_HOST"),
    ({"MAIL_TRANSPORT": "smtp", "SMTP_HOST": "m.example", "SMTP_PORT": "0"}, "SMTP_PORT"),
    ({"SMTP_USERNAME": "u"}, "SMTP_PASSWORD"),
    ({"SMTP_PASSWORD": "p"}, "SMTP_USERNAME"),
    ({"MAIL_TRANSPORT": "smtp", "SMTP_HOST": "m.example", "SMTP_USERNAME": "u", "SMTP_PASSWORD": "p",
      "SMTP_STARTTLS": "false"}, "SMTP_STARTTLS"),
    ({"SES_ENDPOINT_URL": "ftp://x"}, "SES_ENDPOINT_URL"),
    ({"MAIL_THROTTLE_PER_HOUR": "0"}, "MAIL_THROTTLE_PER_HOUR"),
    ({"DIGEST_HOUR": "24"}, "DIGEST_HOUR"),
    ({"DEFAULT_LOCALE": "xx"}, "DEFAULT_LOCALE"),
    ({"DEFAULT_LOCALE": "../etc"}, "DEFAULT_LOCALE"),
    ({"TRIAL_DAYS": "7", "TRIAL_REMINDER_DAYS": "7"}, "TRIAL_REMINDER_DAYS"),
], ids=["transport", "smtp-host", "smtp-port", "username-alone", "password-alone", "login-in-clear",
        "ses-endpoint", "throttle", "digest-hour", "unknown-locale", "locale-path", "reminder-after-end"])
def test_a_bad_value_is_refused_naming_its_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings({**KEY, **env})


def test_a_login_in_clear_is_allowed_to_this_machine_only() -> None:
    settings = load_settings({**KEY, "MAIL_TRANSPORT": "smtp", "SMTP_HOST": "127.0.0.1",
                              "SMTP_STARTTLS": "false", "SMTP_USERNAME": "u", "SMTP_PASSWORD": "p"})
    assert settings.smtp_username == "u"
