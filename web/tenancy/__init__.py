"""Blueprint of the tenancy context: signup (API and pages), the admin page, promotions."""
from flask import Blueprint

bp = Blueprint("tenancy", __name__)

from web.tenancy import api, pages, promotions  # noqa: E402,F401 - views register on bp
