"""The Amazon SES transport (boto3 ``SendRawEmail``, so both parts and our headers travel as built).

botocore's own retries are off: a request SES accepted whose answer was lost would be sent
again by them. Our task retries instead, after recording the attempt. Throttling, 5xx and
connection failures are transient; a read timeout is uncertain (SES may have the email);
``MessageRejected`` and other refusals are permanent. Credentials boto3 cannot find or fetch,
like those SES refuses, are a misconfiguration (the emails wait, spending no attempt).
"""
from __future__ import annotations

import os
import threading
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from domain.notifications.errors import MailerMisconfigured, MailRejected, MailTransient, MailUncertain
from domain.notifications.mail import Email, SendResult, build_message, sender_address, wire_bytes

TRANSIENT_CODES = frozenset({"Throttling", "ThrottlingException", "TooManyRequestsException",
                             "ServiceUnavailable", "InternalFailure", "RequestTimeout"})
CREDENTIAL_CODES = frozenset({"AccessDenied", "AccessDeniedException", "InvalidClientTokenId",
                              "SignatureDoesNotMatch", "UnrecognizedClientException"})


class SesMailer:
    """Sends through Amazon SES (credentials from boto3's usual AWS_* variables)."""

    idempotent = False

    def __init__(self, region: str, *, sender: str, endpoint_url: str = "", configuration_set: str = "",
                 timeout: float = 10.0) -> None:
        self.region, self.sender, self.endpoint_url = region, sender, endpoint_url
        self.configuration_set, self.timeout = configuration_set, timeout
        self._client: Any = None
        self._pid = 0
        self._lock = threading.Lock()

    def _ses(self) -> Any:
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                config = Config(retries={"total_max_attempts": 1}, connect_timeout=self.timeout,
                                read_timeout=self.timeout)
                self._client = boto3.client("ses", region_name=self.region,
                                            endpoint_url=self.endpoint_url or None, config=config)
                self._pid = os.getpid()
            return self._client

    def send(self, email: Email) -> SendResult:
        """One ``SendRawEmail`` call."""
        message = build_message(email, self.sender)
        request: dict[str, Any] = {"Source": sender_address(self.sender), "Destinations": [email.to],
                                   "RawMessage": {"Data": wire_bytes(message)}}
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        try:
            answer = self._ses().send_raw_email(**request)
        except ClientError as exc:
            raise _classified(exc) from None
        except (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError) as exc:
            raise MailerMisconfigured(f"no usable AWS credentials for SES: {type(exc).__name__}") from None
        except (ReadTimeoutError, ConnectionClosedError) as exc:
            raise MailUncertain(f"SES did not answer: {type(exc).__name__}") from None
        except (EndpointConnectionError, BotoCoreError) as exc:
            raise MailTransient(f"cannot reach SES: {type(exc).__name__}") from None
        return SendResult(str(message["Message-ID"]), str(answer["MessageId"]))


def _classified(exc: ClientError) -> Exception:
    error = exc.response.get("Error", {})
    code, text = str(error.get("Code", "")), str(error.get("Message", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code in TRANSIENT_CODES or status >= 500 or status == 429:
        return MailTransient(f"SES deferred the email: {code}")
    if code in CREDENTIAL_CODES:
        return MailerMisconfigured(f"SES refused our credentials: {code}")
    bad_address = code == "InvalidParameterValue" and "address" in text.lower()
    return MailRejected(f"SES refused the email: {code}: {text}"[:500], bad_address=bad_address)
