"""Blueprint for operators: health, readiness, the message plane's dead and overdue lists."""
from flask import Blueprint

bp = Blueprint("operations", __name__)

from web.operations import api, metrics  # noqa: E402,F401 - views register on bp
