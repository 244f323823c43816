"""Blueprint of the notifications context: in-app notices (API and page with the unread
badge), preferences, tenant branding, and SES feedback."""
from flask import Blueprint

bp = Blueprint("notifications", __name__)

from web.notifications import api, feedback, operations, pages  # noqa: E402,F401 - views register on bp
