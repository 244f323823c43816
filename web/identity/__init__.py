"""Blueprint of the identity context: sign-in and the platform's tokens."""
from flask import Blueprint

bp = Blueprint("identity", __name__)

from web.identity import api, oidc, pages, recovery, verification  # noqa: E402,F401 - views register on bp
