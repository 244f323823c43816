"""Blueprint of the tenancy context: signup (API and pages), tenant status."""
from flask import Blueprint

bp = Blueprint("tenancy", __name__)

from web.tenancy import api, pages  # noqa: E402,F401 - views register on bp
