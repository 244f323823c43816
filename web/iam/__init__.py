"""Blueprint of the IAM context: members, roles, invitations, resellers."""
from flask import Blueprint

bp = Blueprint("iam", __name__)

from web.iam import api, pages  # noqa: E402,F401 - views register on bp
