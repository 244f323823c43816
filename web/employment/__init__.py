"""Blueprint of the employment context: employees, structure, reporting lines, imports."""
from flask import Blueprint

bp = Blueprint("employment", __name__)

from web.employment import api, imports, pages, reporting  # noqa: E402,F401 - views register on bp
