"""SES bounces and complaints, posted by Amazon SNS (``SES_FEEDBACK_TOKEN`` as the password
of the subscription's HTTP basic auth; without the setting the endpoint does not exist)."""
from __future__ import annotations

import hmac
import json
from typing import Any

from flask import current_app, jsonify, request
from pydantic import BaseModel

from domain.notifications import feedback
from web.db import management_db
from web.errors import ApiError
from web.notifications import bp
from web.openapi import doc


def _authorised(token: str) -> bool:
    given = request.authorization
    return bool(given and given.type == "basic" and given.password is not None
                and hmac.compare_digest(given.password.encode(), token.encode()))


class FeedbackOut(BaseModel):
    """What the post said: its kind and how many addresses it named."""

    kind: str
    addresses: int


@bp.post("/api/v1/notifications/ses-feedback")
@doc("SES bounces and complaints, posted by Amazon SNS (HTTP basic auth: SES_FEEDBACK_TOKEN)",
     responses={200: FeedbackOut, 401: "wrong or missing token", 404: "SES feedback is not configured",
                502: "a subscription's SubscribeURL could not be fetched (it stays pending)"})
def ses_feedback() -> Any:
    """Mark the addresses of SES's permanent bounces and complaints undeliverable."""
    token = current_app.extensions["allotment.settings"].ses_feedback_token
    if not token:
        raise ApiError(404, "not_found", "SES feedback is not configured (SES_FEEDBACK_TOKEN)")
    if not _authorised(token):
        response = jsonify({"error": "unauthorized", "field": "Authorization",
                            "reason": "SNS must present the feedback token (HTTP basic auth)"})
        response.status_code, response.headers["WWW-Authenticate"] = 401, 'Basic realm="ses-feedback"'
        return response
    try:  # SNS posts JSON as text/plain
        body = json.loads(request.get_data(as_text=True) or "null")
    except (ValueError, RecursionError):  # RecursionError: nested too deep, malformed for us too
        raise ApiError(400, "malformed_json", "the body is not valid JSON", "body") from None
    received = feedback.receive(management_db(), body)
    return jsonify(FeedbackOut(kind=received.kind, addresses=len(received.addresses)).model_dump())
