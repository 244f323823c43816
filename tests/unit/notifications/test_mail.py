"""The message every transport sends: both parts, a Message-ID from its key, its language,
the tenant's name before the platform's address, headers that cannot be injected; and the
Jinja2 renderer of the email templates (escaped HTML, translated strings, strict)."""
from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from jinja2 import UndefinedError

from config.settings import TRANSLATIONS_DIR
from domain.notifications.branding import Branding
from domain.notifications.mail import Email, MaildirMailer, build_message, message_id, wire_bytes
from domain.translations.catalogues import Catalogues
from domain.translations.translator import Translator
from workers.mail_rendering import JinjaEmailRenderer

SENDER = "Allotment <no-reply@allotment.example>"


def _email(**changes: object) -> Email:
    values: dict[str, object] = {"key": "event-1:ada@example.com", "to": "ada@example.com",
                                 "subject": "Hello", "text": "plain body", "html": "<p>html body</p>",
                                 "language": "de", "sender_name": "Acme", "reply_to": "help@acme.example"}
    return Email(**{**values, **changes})  # type: ignore[arg-type]


def _built(email: Email) -> EmailMessage:
    """The message as it travels, read back."""
    raw = wire_bytes(build_message(email, SENDER))
    return message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def test_a_message_has_both_parts_and_its_headers() -> None:
    message = _built(_email())
    assert message["From"].addresses[0].display_name == "Acme"
    assert message["From"].addresses[0].addr_spec == "no-reply@allotment.example"
    assert (message["To"], message["Reply-To"], message["Content-Language"]) == (
        "ada@example.com", "help@acme.example", "de")
    assert message["Message-ID"] == message_id("event-1:ada@example.com", SENDER)
    assert message["Message-ID"].endswith("@allotment.example>")
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_the_same_key_gives_the_same_message_id_and_another_key_another() -> None:
    assert message_id("k1", SENDER) == message_id("k1", SENDER) != message_id("k2", SENDER)


def test_a_subject_cannot_inject_headers() -> None:
    injected = _email(subject="Hi\r\nBcc: victim@example.com", sender_name="A\nB")
    raw = wire_bytes(build_message(injected, SENDER))
    assert b"\r\nBcc:" not in raw
    assert message_from_bytes(raw, policy=policy.default)["Subject"] == "Hi Bcc: victim@example.com"


def test_words_beyond_ascii_are_encoded_in_headers_and_parts() -> None:
    message = _built(_email(subject="Zahlung fehlgeschlagen: Übersicht", sender_name="Müller GmbH",
                            text="Grüße", html="<p>Grüße</p>"))
    assert message["Subject"] == "Zahlung fehlgeschlagen: Übersicht"
    assert message["From"].addresses[0].display_name == "Müller GmbH"
    assert message.get_body(("plain",)).get_content() == "Grüße"  # type: ignore[union-attr]


def test_a_recipient_beyond_ascii_is_written_as_it_is_not_as_an_encoded_word() -> None:
    raw = wire_bytes(build_message(_email(to="jörg@example.de"), SENDER))
    assert "\r\nTo: jörg@example.de\r\n".encode() in raw  # RFC 6532, sent with SMTPUTF8


def test_the_maildir_names_a_message_after_its_key(tmp_path: Path) -> None:
    mailer = MaildirMailer(tmp_path / "mail", SENDER)
    for _ in range(2):
        mailer.send(_email())
    mailer.send(_email(key="event-2:ada@example.com"))
    assert len(list((tmp_path / "mail" / "new").iterdir())) == 2
    assert {m["Message-ID"] for m in mailer.messages()} == {
        message_id("event-1:ada@example.com", SENDER), message_id("event-2:ada@example.com", SENDER)}
    first = next((tmp_path / "mail" / "new").iterdir())
    parsed = message_from_bytes(first.read_bytes(), policy=policy.default)
    assert parsed["From"].addresses[0].display_name == "Acme"


@pytest.fixture(scope="module")
def renderer() -> JinjaEmailRenderer:
    """The renderer over the shipped templates."""
    return JinjaEmailRenderer()


def _context(**changes: object) -> dict[str, object]:
    return {"recipient": "Ada <Admin>", "title": "Title <b>", "body": "Body & <script>x</script>",
            "branding": Branding("Acme & Co", None, "https://acme.example/logo.png"),
            "link": "https://app.example/notifications", "public_url": "https://app.example", "locale": "en",
            "values": {}, **changes}


def test_a_notice_email_escapes_values_in_html_and_keeps_them_in_text(renderer: JinjaEmailRenderer) -> None:
    translate = Translator("en", Catalogues(TRANSLATIONS_DIR, "en"))
    rendered = renderer.render("notice", _context(), translate)
    assert "Hello Ada <Admin>," in rendered.text and "Body & <script>x</script>" in rendered.text
    assert "Body &amp; &lt;script&gt;" in rendered.html and "<script>" not in rendered.html
    assert "Hello Ada &lt;Admin&gt;," in rendered.html and 'alt="Acme &amp; Co"' in rendered.html
    assert "https://app.example/notifications/preferences" in rendered.text


def test_templates_are_translated_and_strict(renderer: JinjaEmailRenderer) -> None:
    translate = Translator("de", Catalogues(TRANSLATIONS_DIR, "en"))
    rendered = renderer.render("notice", _context(locale="de"), translate)
    assert "Hallo Ada <Admin>," in rendered.text and '<html lang="de">' in rendered.html
    assert "In Allotment öffnen" in rendered.html
    with pytest.raises(UndefinedError):
        renderer.render("invitation", _context(), translate)  # no accept_url: an error, not a blank link
