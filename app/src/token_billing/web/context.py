"""What every view needs: the process's services, JSON responses, the auth decorator
and query-parameter parsing."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from flask import Response, current_app, g, request
from sqlalchemy import Engine

from .. import auth
from ..config import Settings
from ..errors import Forbidden, InvalidInput
from ..ingest import Ingestor
from ..validation import parse_timestamp

F = TypeVar("F", bound=Callable[..., Any])
# How a route names the customer whose data it touches (see ``requires``).
Tenancy = Literal["param", "body", "none", "platform"]


@dataclass(frozen=True)
class Services:
    engine: Engine
    settings: Settings
    ingestor: Ingestor
    auth_cache: auth.AuthCache


def services() -> Services:
    svc: Services = current_app.extensions["token_billing"]
    return svc


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str)
    return Response(body, status=status, mimetype="application/json", headers=headers)


def current_key() -> auth.ApiKey:
    key: auth.ApiKey = g.api_key
    return key


def requires(scope: str, tenancy: Tenancy = "param") -> Callable[[F], F]:
    """Authenticate, check the scope, and hold a customer-bound key to its customer.

    tenancy: ``param`` the customer is the ``customer_id`` path or query parameter
    (required for a bound key); ``body`` the view calls ``current_key().check_customers``
    with the customers named in the body; ``none`` no customer data (the price list);
    ``platform`` data across customers, refused to bound keys.
    """

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            svc = services()
            header = request.headers.get("Authorization")
            key = svc.auth_cache.get(header)
            if key is None:
                with svc.engine.connect() as conn:
                    key = auth.authenticate(conn, header)
                svc.auth_cache.put(header, key)  # type: ignore[arg-type]
            if not key.allows(scope):
                raise Forbidden(
                    "insufficient_scope",
                    f"API key lacks the '{scope}' scope required for "
                    f"{request.method} {request.path} (key scopes: "
                    f"{','.join(sorted(key.scopes))})",
                )
            g.api_key = key
            g.api_key_id = key.key_id
            if key.customer_id is not None:
                if tenancy == "param":
                    named = kwargs.get("customer_id") or request.args.get("customer_id")
                    key.check_customers([named] if named else [])
                elif tenancy == "platform":
                    key.check_customers([])
            return fn(*args, **kwargs)

        wrapper.required_scope = scope  # type: ignore[attr-defined]
        wrapper.tenancy = tenancy  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return deco


def time_param(name: str, required: bool = True) -> datetime | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        if required:
            raise InvalidInput("missing_parameter", f"query parameter {name} is required")
        return None
    value = parse_timestamp(raw)
    if value is None:
        raise InvalidInput(
            "invalid_parameter",
            f"{name} must be an RFC 3339 timestamp, e.g. 2025-01-01T00:00:00Z",
        )
    return value


def json_object(message: str) -> dict[str, Any]:
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise InvalidInput("invalid_body", message)
    return payload
