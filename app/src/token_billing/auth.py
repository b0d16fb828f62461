"""API keys: ``tbk_<key_id>_<secret>``; only a SHA-256 of the whole key is stored.

The secret has 256 bits of entropy, so a fast hash is the right tool (no password
stretching needed); comparison is constant-time. Scopes: ingest, read, admin (admin
implies read and ingest).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, select, update

from .customers import require as require_customer
from .errors import Forbidden, InvalidInput, StateConflict, Unauthenticated
from .schema import api_keys

SCOPES = ("ingest", "read", "admin")
PREFIX = "tbk_"


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    scopes: frozenset[str]
    customer_id: str | None = None  # bound: reads and ingests of this customer only

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def check_customers(self, customer_ids: Iterable[str]) -> None:
        """The one rule for customer-bound keys: every customer touched is the key's own,
        and a request that names none (it spans customers) is refused."""
        if self.customer_id is None:
            return
        named = set(customer_ids)
        others = sorted(named - {self.customer_id})
        if others:
            raise Forbidden(
                "customer_forbidden",
                f"API key {self.key_id} is bound to customer {self.customer_id!r} and may "
                f"not touch {', '.join(map(repr, others[:3]))}",
            )
        if not named:
            raise Forbidden(
                "customer_required",
                f"API key {self.key_id} is bound to customer {self.customer_id!r}: "
                f"name it (customer_id={self.customer_id})",
            )


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(raw: str) -> frozenset[str]:
    scopes = frozenset(s.strip() for s in raw.split(",") if s.strip())
    bad = scopes - set(SCOPES)
    if bad or not scopes:
        raise InvalidInput(
            "invalid_scopes",
            f"invalid scopes {','.join(sorted(bad)) or '(none)'}: use a comma-separated "
            f"subset of {','.join(SCOPES)}",
        )
    return scopes


def create_key(
    conn: Connection,
    name: str,
    scopes: frozenset[str],
    key: str | None = None,
    customer_id: str | None = None,
) -> tuple[str, str]:
    """Create a key; returns (key_id, full key). The full key is not stored anywhere.

    ``key`` lets a deploy tool supply its own pre-generated key (idempotent provisioning);
    it must have the ``tbk_<id>_<secret>`` shape. ``customer_id`` binds the key to that
    customer; a bound key cannot have the admin scope.
    """
    if customer_id is not None:
        if "admin" in scopes:
            raise InvalidInput("invalid_value", "a customer-bound key cannot have the admin scope")
        require_customer(conn, customer_id)
    if key is None:
        key_id = secrets.token_hex(8)
        key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    else:
        parsed = split_key(key)
        if parsed is None:
            raise InvalidInput(
                "invalid_value", "key must look like tbk_<16 hex chars>_<secret of >= 32 chars>"
            )
        key_id = parsed
    existing = conn.execute(
        select(api_keys.c.key_hash, api_keys.c.revoked_at, api_keys.c.customer_id).where(
            api_keys.c.key_id == key_id
        )
    ).first()
    if existing is not None:
        if (
            hmac.compare_digest(existing[0], hash_key(key))
            and existing[1] is None
            and existing[2] == customer_id
        ):
            return key_id, key  # same key provisioned again: no-op
        raise StateConflict("key_exists", f"key id {key_id} already exists")
    conn.execute(
        api_keys.insert().values(
            key_id=key_id,
            name=name,
            key_hash=hash_key(key),
            scopes=",".join(sorted(scopes)),
            customer_id=customer_id,
        )
    )
    return key_id, key


def generate_key() -> str:
    return f"{PREFIX}{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"


def split_key(key: str) -> str | None:
    """Return the key id of a well-formed key, else None."""
    if not key.startswith(PREFIX):
        return None
    rest = key[len(PREFIX) :]
    key_id, sep, secret = rest.partition("_")
    if not sep or len(key_id) != 16 or len(secret) < 32:
        return None
    try:
        int(key_id, 16)
    except ValueError:
        return None
    return key_id


def revoke_key(conn: Connection, key_id: str) -> bool:
    res = conn.execute(
        update(api_keys)
        .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return bool(res.rowcount)


def list_keys(conn: Connection) -> list[dict[str, object]]:
    rows = conn.execute(
        select(
            api_keys.c.key_id,
            api_keys.c.name,
            api_keys.c.scopes,
            api_keys.c.created_at,
            api_keys.c.revoked_at,
            api_keys.c.customer_id,
        ).order_by(api_keys.c.created_at)
    ).mappings()
    return [dict(r) for r in rows]


def authenticate(conn: Connection, header: str | None) -> ApiKey:
    """Resolve an ``Authorization`` header value. Raises Unauthenticated."""
    if not header:
        raise Unauthenticated(
            "missing_api_key", "missing API key: send 'Authorization: Bearer <key>'"
        )
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated(
            "invalid_api_key", "malformed Authorization header: use 'Bearer <key>'"
        )
    key_id = split_key(token)
    if key_id is None:
        raise Unauthenticated("invalid_api_key", "invalid API key")
    row = conn.execute(
        select(
            api_keys.c.key_hash,
            api_keys.c.scopes,
            api_keys.c.revoked_at,
            api_keys.c.name,
            api_keys.c.customer_id,
        ).where(api_keys.c.key_id == key_id)
    ).first()
    if row is None or not hmac.compare_digest(row[0], hash_key(token)):
        raise Unauthenticated("invalid_api_key", "invalid API key")
    if row[2] is not None:
        raise Unauthenticated("revoked_api_key", "API key has been revoked")
    return ApiKey(
        key_id=key_id, name=row[3], scopes=frozenset(row[1].split(",")), customer_id=row[4]
    )


class AuthCache:
    """Per-process cache of successful authentications (never of failures).

    Saves the key lookup on the hot ingest path. A revoked key keeps working for at most
    ``ttl`` seconds in a process that used it recently (setting ``auth_cache_seconds``;
    0 disables the cache).
    """

    MAX_ENTRIES = 10_000

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[ApiKey, float]] = {}
        self._lock = threading.Lock()

    def get(self, header: str | None) -> ApiKey | None:
        if self.ttl <= 0 or not header:
            return None
        entry = self._entries.get(header)
        if entry is None:
            return None
        if entry[1] < time.monotonic():
            with self._lock:
                self._entries.pop(header, None)
            return None
        return entry[0]

    def put(self, header: str, key: ApiKey) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[header] = (key, time.monotonic() + self.ttl)
