"""Blueprint of the assets context: uploads (streamed or presigned), status, downloads,
usage and policy, and the local storage's upload links."""
from flask import Blueprint

bp = Blueprint("assets", __name__)

from web.assets import api, pages, storage_links  # noqa: E402,F401 - views register on bp
