"""The Flask app factory: JSON API, HTML pages and the flask CLI (``flask --app web``)."""
from __future__ import annotations

import os
import re
import uuid
from typing import Any

from flask import Flask, g, redirect, request, url_for
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from config import logging as log_context
from config.settings import Settings, settings_or_exit
from domain.bootstrap import build_provider
from domain.identity.services import PasswordSealer
from web import auth, cli, db, errors, openapi, ratelimit
from web.assets import bp as assets_bp
from web.employment import bp as employment_bp
from web.i18n import init_app as init_translations
from web.iam import bp as iam_bp
from web.identity import bp as identity_bp
from web.notifications import bp as notifications_bp
from web.operations import bp as operations_bp
from web.publications import bp as publications_bp
from web.purchases import bp as purchases_bp
from web.tenancy import bp as tenancy_bp
from web.translations import bp as translations_bp
from workers.publisher import web_publisher

csrf = CSRFProtect()
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class PageSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie session (it carries the CSRF token of the HTML forms), opened
    for pages only: the JSON API is stateless (bearer tokens), and reading the cookie and
    building its signer on every API request cost more than some views."""

    def open_session(self, app: Flask, request: Any) -> SessionMixin | None:
        """No session under ``/api/`` (a read finds nothing, a write raises); else Flask's."""
        if request.path.startswith("/api/"):
            return self.make_null_session(app)
        return super().open_session(app, request)


def create_app(settings: Settings | None = None) -> Flask:
    """Build the web app for ``settings`` (read from the environment when not given)."""
    settings = settings or settings_or_exit(os.environ)
    if settings.env != "test":
        log_context.configure_logging(settings.log_level)
    app = db.App(__name__)
    app.session_interface = PageSessions()
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_content_length,
        WTF_CSRF_CHECK_DEFAULT=False,  # pages are checked below; the API uses bearer tokens
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        JSON_SORT_KEYS=False,
    )
    app.extensions["allotment.settings"] = settings
    app.extensions["allotment.provider"] = build_provider(settings, web=True)
    app.extensions["allotment.sealer"] = PasswordSealer(settings.secret_key)
    app.extensions["allotment.celery"] = web_publisher(settings.broker_url, settings.result_backend)
    csrf.init_app(app)
    if settings.trusted_proxies:
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    _register(app, settings)
    return app


def _register(app: Flask, settings: Settings) -> None:
    errors.register_error_handlers(app)
    db.init_app(app)
    auth.init_app(app, settings)
    ratelimit.init_app(app, settings)
    init_translations(app, settings)  # the language of pages: the user's choice, else Accept-Language
    for blueprint in (openapi.bp, operations_bp, identity_bp, iam_bp, tenancy_bp, notifications_bp,
                      purchases_bp, employment_bp, assets_bp, translations_bp, publications_bp):
        app.register_blueprint(blueprint)
    cli.init_app(app)

    @app.before_request
    def _bind_request() -> None:
        # A caller's id is kept only if it is a short token: it goes into logs and messages.
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        log_context.request_id.set(g.request_id)
        log_context.correlation_id.set(g.request_id)
        log_context.tenant_id.set(None)  # set by auth once the tenant is known
        # A view marked ``checks_own_csrf`` checks its token itself (an upload form read as a
        # stream, web/assets) or is authorised by a signed link instead of cookies.
        own = getattr(app.view_functions.get(request.endpoint or ""), "checks_own_csrf", False)
        if request.method not in ("GET", "HEAD", "OPTIONS") and not request.path.startswith("/api/") \
                and not own:
            csrf.protect()

    @app.after_request
    def _headers(response: Any) -> Any:
        response.headers["X-Request-Id"] = g.get("request_id", "")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        # No page is ever shown inside another site's frame (clickjacking a signed-in admin
        # into pressing a button): CSP for browsers that know it, X-Frame-Options for the rest.
        response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    @app.get("/")
    def index() -> Any:
        """The front door: sign up a tenant."""
        return redirect(url_for("tenancy.signup_page"))
