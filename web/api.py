"""Helpers every JSON view uses: parse a pydantic body or query string, answer 202 with a
status URL."""
from __future__ import annotations

import re
from typing import Annotated, Any, Self, TypeVar

from flask import current_app, g, jsonify, request
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from domain.text import CONTROL, LONE_SURROGATE, whole_number
from web.errors import MAX_DETAILS, ApiError, cut

M = TypeVar("M", bound=BaseModel)


def _no_control_characters(value: str) -> str:
    if CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


# A tenant's slug: 3-63 lower-case letters, digits and dashes, no dash at either end.
SLUG = r"^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$"

# The token of an emailed link (domain.links), as a JSON body carries it.
LinkToken = Annotated[str, Field(min_length=20, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]

# Text a person typed: no NUL or other control characters (PostgreSQL refuses NUL in text).
PlainText = Annotated[str, AfterValidator(_no_control_characters)]


_MALFORMED = object()  # g's record of a body that is not JSON


def json_body() -> Any:
    """The request's JSON body, parsed once per request (the rate limiter reads it before the
    view); ``_MALFORMED`` when it is not JSON.

    UTF-8 only, decoded strictly (RFC 8259): the json module would also take UTF-16 and
    UTF-32, and UTF-8 bytes of a lone surrogate, which no Unicode text holds (a byte-order
    mark is dropped). RecursionError: deeply nested input is malformed for us too."""
    if "json_body" not in g:
        try:
            g.json_body = current_app.json.loads(request.get_data(cache=True).decode("utf-8-sig"))
        except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            g.json_body = _MALFORMED
    return g.json_body


def parse_json(model: type[M]) -> M:
    """The request body as ``model``; 415/400/422 naming the field and the reason."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "expected application/json", "Content-Type")
    data = json_body()
    if data is _MALFORMED:
        raise ApiError(400, "malformed_json", "the body is not valid JSON", "body")
    raw = request.get_data(cache=True)
    # A literal ``null`` is valid JSON, just not an object.
    if not isinstance(data, dict):
        raise ApiError(422, "validation_failed", "expected a JSON object", "body")
    if _SURROGATE_ESCAPE.search(raw) and (at := _lone_surrogate_at(data)) is not None:
        raise ApiError(422, "validation_failed", "must be Unicode text (a lone surrogate escape)", at)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _refusal(exc, "body") from None


# JSON's \uXXXX escapes can write half of a UTF-16 pair alone, which no Unicode text holds:
# UTF-8 cannot carry it to PostgreSQL, to argon2 or to a parser in C. A body with such an
# escape is looked through (a pair that makes one character is fine); strictly decoded, a
# body can carry one no other way.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


_Node = tuple[Any, str] | None  # (parent node, name): a path, put together only when needed


def _lone_surrogate_at(data: Any) -> str | None:
    """The field (``sections.0.heading``) of the first text in ``data`` holding a lone
    surrogate, or None. One visit per value, iterative: a path is put together only for the
    field it names."""
    stack: list[tuple[Any, _Node]] = [(data, None)]
    while stack:
        value, at = stack.pop()
        if isinstance(value, str):
            if LONE_SURROGATE.search(value):
                return _path(at)
        elif isinstance(value, dict):
            for key, item in reversed(list(value.items())):  # popped in the document's order
                node = (at, cut(LONE_SURROGATE.sub("?", key)))
                if LONE_SURROGATE.search(key):
                    return _path(node)
                if isinstance(item, str | dict | list):
                    stack.append((item, node))
        elif isinstance(value, list):
            stack.extend((item, (at, str(index))) for index, item in reversed(list(enumerate(value)))
                         if isinstance(item, str | dict | list))
    return None


def _path(node: _Node) -> str:
    names: list[str] = []
    while node is not None:
        node, name = node
        names.append(name)
    return ".".join(reversed(names)) or "body"


def parse_query(model: type[M]) -> M:
    """The query string as ``model`` (declare it with ``doc(query=...)``); 422 naming the
    parameter and the reason. A parameter given twice counts once, as its first value."""
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise _refusal(exc, "query") from None


def _refusal(exc: ValidationError, whole: str) -> ApiError:
    # Each part cut before the join: a key made of dots must not make a field of a thousand parts.
    details = [{"field": ".".join(cut(str(p)) for p in err["loc"]) or whole, "reason": err["msg"]}
               for err in exc.errors(include_url=False, include_context=False,
                                     include_input=False)[:MAX_DETAILS]]
    return ApiError(422, "validation_failed", details[0]["reason"], details[0]["field"], details)


def _digits_only(value: object) -> object:
    # int() and pydantic's lax mode also take " 5", "+5", "5.0", "1_0" and "²"; a query's
    # number is written with the digits 0-9, as the pages read theirs (web.pages).
    if isinstance(value, str) and whole_number(value, 9) is None:
        raise ValueError("must be a whole number written with the digits 0-9")
    return value


# A whole number in a query string.
Number = Annotated[int, BeforeValidator(_digits_only)]


class Query(BaseModel):
    """A query string's parameters: one not declared is refused, naming it."""

    model_config = ConfigDict(extra="forbid")


class Paging(Query):
    """A slice of a list, newest first: at most ``limit`` items after the first ``offset``."""

    limit: Number = Field(default=50, ge=0, le=200)
    offset: Number = Field(default=0, ge=0, le=1_000_000)


def accepted(status_url: str, **body: Any) -> Any:
    """202 Accepted with the status URL in the body and the Location header."""
    response = jsonify({**body, "status_url": status_url})
    response.status_code = 202
    response.headers["Location"] = status_url
    return response


class PageOut(BaseModel):
    """Where one page of a longer list stands; a subclass declares its ``items``."""

    total: int
    page: int
    per_page: int
    pages: int

    @classmethod
    def of(cls, found: Any, items: list[Any]) -> Self:
        """The answer for ``found``, a domain page (``total``, ``page``, ``per_page``,
        ``pages``), with ``items`` its items as the API shows them."""
        return cls(items=items, total=found.total, page=found.page, per_page=found.per_page,
                   pages=found.pages)


class FromView(BaseModel):
    """An API shape made field for field from a domain view (a dataclass of the same fields)."""

    @classmethod
    def of(cls, view: Any) -> Self:
        """The JSON shape of ``view``."""
        return cls(**view.__dict__)
