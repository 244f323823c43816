"""Blueprint of the purchases context: the checkout (API and pages), purchase status, and
the operators' catalogue, refunds and billing ledger."""
from flask import Blueprint
from flask.blueprints import BlueprintSetupState

from domain.bootstrap import build_gateway

bp = Blueprint("purchases", __name__)


@bp.record_once
def _payment_gateway(state: BlueprintSetupState) -> None:
    # The web tier tokenises cards at the gateway; one adapter per app, as the workers have.
    extensions = state.app.extensions
    extensions.setdefault("allotment.gateway", build_gateway(extensions["allotment.settings"]))


from web.purchases import api, operations, pages  # noqa: E402,F401 - views register on bp
