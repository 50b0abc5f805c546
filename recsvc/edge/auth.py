"""Who may call what: API keys for the app backend and for operators.

Two key sets, both read from the environment: `RECSVC_APP_API_KEYS` for the app backend
(feed and events) and `RECSVC_ADMIN_API_KEYS` for operators (models, experiments, catalogue,
profiles). Clients send `Authorization: Bearer <key>`. Keys are compared as SHA-256 digests in
constant time against every configured key, so neither a key's content nor its position
leaks through timing. An empty set is refused at start-up unless
`RECSVC_ALLOW_UNAUTHENTICATED=true` says, explicitly, that its routes are open.

Liveness, readiness, metrics and the API docs are open: probes and scrapers carry no keys.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from enum import StrEnum

from recsvc.service.settings import Settings, SettingsError

MIN_KEY_LENGTH = 16


class Access(StrEnum):
    OPEN = "open"
    APP = "app"
    ADMIN = "admin"


APP_ROUTES = ("/v1/feed", "/v1/events")
API_PREFIX = "/v1/"  # every other API route is an operator's


def access_for(path: str) -> Access:
    """The key a path needs (unknown /v1 paths need an admin key, so probing them finds nothing)."""
    if path in APP_ROUTES:
        return Access.APP
    if path.startswith(API_PREFIX) or path == API_PREFIX.rstrip("/"):
        return Access.ADMIN
    return Access.OPEN


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _parse_keys(raw: str, variable: str) -> tuple[str, ...]:
    keys = tuple(key.strip() for key in raw.split(",") if key.strip())
    short = [i for i, key in enumerate(keys, 1) if len(key) < MIN_KEY_LENGTH]
    if short:
        positions = ", ".join(map(str, short))
        raise SettingsError(
            f"{variable}: key(s) #{positions} shorter than {MIN_KEY_LENGTH} characters"
        )
    return keys


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: its access and a label safe to log (a digest prefix)."""

    access: Access
    label: str


@dataclass(frozen=True)
class KeyRing:
    app: tuple[bytes, ...]
    admin: tuple[bytes, ...]
    allow_unauthenticated: bool
    # each key's digest and the caller it identifies (made once, not on every request)
    _callers: tuple[tuple[bytes, Caller], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        callers = tuple(
            (digest, Caller(access, f"{access}:{digest.hex()[:8]}"))
            for access, digests in ((Access.APP, self.app), (Access.ADMIN, self.admin))
            for digest in digests
        )
        object.__setattr__(self, "_callers", callers)

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        app = _parse_keys(settings.app_api_keys, "RECSVC_APP_API_KEYS")
        admin = _parse_keys(settings.admin_api_keys, "RECSVC_ADMIN_API_KEYS")
        if set(app) & set(admin):
            raise SettingsError(
                "RECSVC_APP_API_KEYS and RECSVC_ADMIN_API_KEYS share a key: an app key must not "
                "open the operator routes"
            )
        missing = [
            name
            for name, keys in (("RECSVC_APP_API_KEYS", app), ("RECSVC_ADMIN_API_KEYS", admin))
            if not keys
        ]
        if missing and not settings.allow_unauthenticated:
            raise SettingsError(
                f"{' and '.join(missing)}: not set; give the API keys, or set "
                "RECSVC_ALLOW_UNAUTHENTICATED=true to serve those routes without keys"
            )
        return cls(
            tuple(map(_digest, app)), tuple(map(_digest, admin)), settings.allow_unauthenticated
        )

    def open_levels(self) -> list[Access]:
        """The access levels served without a key (RECSVC_ALLOW_UNAUTHENTICATED)."""
        return [level for level, keys in ((Access.APP, self.app), (Access.ADMIN, self.admin))
                if not keys]  # fmt: skip

    def identify(self, key: str) -> Caller | None:
        """The caller a presented key belongs to; None for an unknown key."""
        digest = _digest(key)
        found: Caller | None = None
        for known, caller in self._callers:  # no early exit: every key is compared
            if hmac.compare_digest(digest, known):
                found = caller
        return found

    def needs_key(self, access: Access) -> bool:
        return bool(self.app if access is Access.APP else self.admin) and access is not Access.OPEN


def bearer_token(header: bytes | None) -> str | None:
    """The key in an `Authorization: Bearer <key>` header, if it is one."""
    if not header:
        return None
    scheme, _, token = header.decode("latin-1").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
