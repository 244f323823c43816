"""Blueprint of the translations context: tenant overrides (API and admin page), each user's
language, the ``flask translations check`` command, and the language of every page."""
from flask import Blueprint

bp = Blueprint("translations", __name__)

from web.translations import api, cli, pages  # noqa: E402,F401 - views and commands register on bp
