"""Blueprint of the publications context: authors' drafts and publishing, readers' lists."""
from flask import Blueprint

bp = Blueprint("publications", __name__)

from web.publications import api, pages  # noqa: E402,F401 - views register on bp
