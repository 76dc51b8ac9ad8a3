"""Build the client, token store and state store that a command needs from the settings."""

from __future__ import annotations

from pathlib import Path

from sync.auth import OAuthClientConfig
from sync.client import PartnerClient, RetryPolicy
from sync.config import JobSettings, Settings
from sync.errors import ConfigError
from sync.state import StateStore
from sync.tokens import OAuthTokenAuth, TokenStore, require_scopes

TOKEN_FILE = "tokens.json"  # noqa: S105 - a file name, not a secret

# Scope each feature needs, and the feature's name for the error that reports it missing.
INVENTORY_SCOPES = {
    "frames:read": "the frame mirror (GET /frames)",
    "inventory:write": "inventory sync (POST /inventory)",
}


def token_path(settings: Settings) -> Path:
    return settings.state.dir / TOKEN_FILE


def oauth_config(settings: Settings) -> OAuthClientConfig:
    """Return the OAuth client settings for ``auth login``.

    Raises:
        ConfigError: when auth.client_id is missing.
    """
    auth = settings.auth
    if not auth.client_id:
        raise ConfigError(
            "auth.client_id is missing; set it to the client id Eyekiosk registered for you"
        )
    return OAuthClientConfig(
        base_url=settings.partner.base_url,
        client_id=auth.client_id,
        client_secret=auth.secret(),
        scopes=list(auth.scopes),
        issuer=auth.issuer,
        authorization_endpoint=auth.authorization_endpoint,
        token_endpoint=auth.token_endpoint,
        redirect_port=auth.redirect_port,
        timeout=settings.partner.timeout_s,
    )


def job_scopes(settings: Settings, jobs: list[JobSettings]) -> dict[str, str]:
    """Return every scope the given jobs need, mapped to the feature that needs it.

    Raises:
        ConfigError: when a job's order sink options are invalid.
    """
    from sync.orders import open_sink, required_scopes
    from sync.sources import source_context

    needed = dict(INVENTORY_SCOPES)
    for job in jobs:
        if job.orders is None:
            continue
        sink = open_sink(job.orders.sink, job=job.name, context=source_context(settings, job))
        try:
            prescriptions = sink.wants_prescriptions
        finally:
            sink.close()
        needed.update(required_scopes(job.orders, prescriptions=prescriptions))
    return needed


def open_client(settings: Settings, *, needed: dict[str, str] | None = None) -> PartnerClient:
    """Build an authenticated Partner API client and check the granted scopes.

    Args:
        settings: the loaded settings.
        needed: scope mapped to the feature that needs it; defaults to inventory sync.

    Raises:
        NotLoggedInError: when ``auth login`` has not been run.
        MissingScopeError: when a needed scope was not granted.
    """
    auth = OAuthTokenAuth(
        TokenStore(token_path(settings)),
        client_secret=settings.auth.secret(),
        skew=settings.auth.refresh_skew_s,
        timeout=settings.partner.timeout_s,
    )
    require_scopes(auth.granted_scopes(), INVENTORY_SCOPES if needed is None else needed)
    partner = settings.partner
    return PartnerClient(
        partner.base_url,
        auth=auth,
        timeout=partner.timeout_s,
        retry=RetryPolicy(
            attempts=partner.retry_attempts,
            max_delay=partner.retry_max_delay_s,
            total_timeout=partner.retry_total_s,
        ),
        concurrency=partner.concurrency,
        page_limit=partner.page_limit,
    )


def ensure_state_dir(settings: Settings) -> Path:
    """Create the state folder (mode 0700) if needed and return it.

    Raises:
        ConfigError: when the folder cannot be created or is not a folder.
    """
    folder = settings.state.dir
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as error:
        raise ConfigError(
            f"state.dir: cannot create {folder}: {error.strerror}; point state.dir at a "
            "folder this user may write, e.g. /var/lib/eyekiosk-sync"
        ) from None
    return folder


def state_store(settings: Settings) -> StateStore:
    """Return the state store named by the settings, not yet open; use it in a with block."""
    ensure_state_dir(settings)
    return StateStore(settings.state.url())


__all__ = [
    "INVENTORY_SCOPES",
    "ensure_state_dir",
    "oauth_config",
    "open_client",
    "state_store",
    "token_path",
]
