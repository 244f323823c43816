"""Blueprint of the notifications context: in-app notices."""
from flask import Blueprint

bp = Blueprint("notifications", __name__)

from web.notifications import api  # noqa: E402,F401 - views register on bp
