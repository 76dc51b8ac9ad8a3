"""Settings of eyekiosk-sync: one TOML file, overridable by environment variables.

Precedence, highest first: environment variables (``EYEKIOSK_SYNC_`` prefix,
``__`` between nested keys, e.g. ``EYEKIOSK_SYNC_PARTNER__TIMEOUT_S=10``), then
the TOML file, then the defaults below. Secrets are never read from the TOML
file: the client secret comes from ``EYEKIOSK_SYNC_AUTH__CLIENT_SECRET`` or from
the file that ``auth.client_secret_file`` names.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from sync.errors import ConfigError
from sync.webhooks import WebhookSettings

ENV_PREFIX = "EYEKIOSK_SYNC_"
CONFIG_ENV = "EYEKIOSK_SYNC_CONFIG"
DEFAULT_CONFIG_PATHS = (Path("config.toml"), Path("/etc/eyekiosk-sync/config.toml"))

DEFAULT_BASE_URL = "https://eyekiosk.online"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_CONCURRENCY = 4
DEFAULT_PAGE_LIMIT = 500
DEFAULT_RETRY_ATTEMPTS = 5
DEFAULT_RETRY_MAX_DELAY_S = 30.0
DEFAULT_RETRY_TOTAL_S = 120.0
DEFAULT_SCOPES = ("openid", "frames:read", "inventory:write")
DEFAULT_STATE_DIR = Path("/var/lib/eyekiosk-sync")
DEFAULT_OVERLAP_S = 2.0
DEFAULT_FULL_RESCAN_EVERY = 24
DEFAULT_MAX_DROP_SHARE = 0.5
DEFAULT_MAX_ZERO_SHARE = 0.1
DEFAULT_MISFIRE_GRACE_S = 300
DEFAULT_ORDER_OVERLAP_S = 5.0
DEFAULT_SETTLE_MINUTES = 60.0
SECRET_KEYS = ("client_secret", "password", "token", "access_token", "refresh_token")


class Section(BaseModel):
    """A TOML table: unknown keys are an error, so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")


class PartnerSettings(Section):
    """Partner API address, timeouts, concurrency and retry limits."""

    base_url: str = DEFAULT_BASE_URL
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0)
    concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1, le=32)
    page_limit: int = Field(default=DEFAULT_PAGE_LIMIT, ge=2, le=500)
    retry_attempts: int = Field(default=DEFAULT_RETRY_ATTEMPTS, ge=1, le=20)
    retry_max_delay_s: float = Field(default=DEFAULT_RETRY_MAX_DELAY_S, gt=0)
    retry_total_s: float = Field(default=DEFAULT_RETRY_TOTAL_S, gt=0)

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")


class AuthSettings(Section):
    """The OAuth client this installation was registered as."""

    client_id: str = ""
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None
    scopes: list[str] = Field(default_factory=lambda: list(DEFAULT_SCOPES))
    issuer: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    redirect_port: int = Field(default=0, ge=0, le=65535)
    refresh_skew_s: float = Field(default=60.0, ge=0)

    def secret(self) -> str | None:
        """Return the client secret from the environment or the secret file.

        Raises:
            ConfigError: when the secret file cannot be read.
        """
        if self.client_secret is not None:
            return self.client_secret.get_secret_value()
        if self.client_secret_file is None:
            return None
        try:
            return self.client_secret_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigError(
                f"auth.client_secret_file: cannot read {self.client_secret_file}: "
                f"{error.strerror}; check the path and that this user may read it"
            ) from error


class StateSettings(Section):
    """Location of the state database, tokens and reject files."""

    dir: Path = DEFAULT_STATE_DIR
    database_url: str | None = None

    def url(self) -> str:
        """Return the SQLAlchemy URL of the state database (SQLite in ``dir`` by default)."""
        return self.database_url or f"sqlite:///{self.dir / 'state.db'}"


class MirrorSettings(Section):
    """Refresh policy of the local copy of Eyekiosk's frame catalogue."""

    overlap_s: float = Field(default=DEFAULT_OVERLAP_S, ge=0)
    full_rescan_every: int = Field(default=DEFAULT_FULL_RESCAN_EVERY, ge=0)


class SchedulerSettings(Section):
    """Scheduler options of the daemon."""

    misfire_grace_s: int = Field(default=DEFAULT_MISFIRE_GRACE_S, ge=1)
    timezone: str = "UTC"


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class SourceSettings(BaseModel):
    """One source of a job: ``adapter`` picks the adapter, the other keys are its options."""

    model_config = ConfigDict(extra="allow")

    adapter: str
    name: str | None = None

    def label(self, index: int) -> str:
        """Return the source's name, or ``source<N>`` (1-based) when it has none."""
        return self.name or f"source{index + 1}"

    def options(self) -> dict[str, Any]:
        """Return the adapter's own options: every key but ``adapter`` and ``name``."""
        return dict(self.model_extra or {})


class CombineSettings(Section):
    """Rules that merge the rows of a job's sources into one row per key.

    Attributes:
        quantity: "sum" adds the sources' quantities, "max" and "min" pick one,
            "first" takes the first source (in table order) that has the key.
        max_quantity: cap applied after combining, e.g. to limit how much of a
            supplier's stock is offered.
        price: "first" takes the price of the first source that has one;
            "min" and "max" compare the sources' prices.
    """

    quantity: Literal["sum", "max", "min", "first"] = "sum"
    max_quantity: int | None = Field(default=None, ge=0)
    price: Literal["first", "min", "max"] = "first"


class OrderSettings(Section):
    """The order side of a job: where pulled orders go and how kiosk sales are netted.

    Attributes:
        sink: the order sink, chosen by ``adapter`` like a stock source.
        statuses: pull only orders in these statuses; all when empty.
        overlap_s: seconds subtracted from the order checkpoint before each pull.
        settle_minutes: how long a kiosk sale is netted out of stock pushes when
            the sink cannot confirm that the practice's system booked it.
        status_source: optional source of fulfilment statuses to send back.
    """

    sink: SourceSettings
    statuses: list[Literal["pending", "in_progress", "completed", "shipped", "cancelled"]] = Field(
        default_factory=list
    )
    overlap_s: float = Field(default=DEFAULT_ORDER_OVERLAP_S, ge=0)
    settle_minutes: float = Field(default=DEFAULT_SETTLE_MINUTES, ge=0)
    status_source: SourceSettings | None = None


class JobSettings(Section):
    """One ``[[jobs]]`` table: sources, a schedule and how to compare."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    cron: str | None = None
    interval_minutes: float | None = Field(default=None, gt=0)
    match_on: Literal["sku", "upc", "composite"] = "sku"
    missing: Literal["ignore", "zero"] = "ignore"
    update_price: bool = True
    max_drop_share: float = Field(default=DEFAULT_MAX_DROP_SHARE, gt=0, le=1)
    max_zero_share: float = Field(default=DEFAULT_MAX_ZERO_SHARE, ge=0, le=1)
    sku_case: Literal["keep", "upper", "lower"] = "keep"
    sources: list[SourceSettings] = Field(min_length=1)
    combine: CombineSettings = Field(default_factory=CombineSettings)
    orders: OrderSettings | None = None

    @model_validator(mode="after")
    def _one_trigger(self) -> JobSettings:
        if self.cron and self.interval_minutes:
            raise ValueError("set cron or interval_minutes, not both")
        if self.cron:
            _validate_cron(self.cron)
        names = [source.name or f"source{index + 1}" for index, source in enumerate(self.sources)]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(
                f"source names must be unique within a job; repeated: {', '.join(repeated)}"
            )
        return self


def _validate_cron(expression: str) -> None:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(expression)
    except ValueError as error:
        raise ValueError(f"cron {expression!r} is invalid: {error}") from error


class Settings(BaseSettings):
    """All settings. Build it with ``load_settings``, not directly."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        nested_model_default_partial_update=True,
    )

    partner: PartnerSettings = Field(default_factory=PartnerSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    mirror: MirrorSettings = Field(default_factory=MirrorSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    jobs: list[JobSettings] = Field(default_factory=list)

    config_path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _unique_job_names(self) -> Settings:
        names = [job.name for job in self.jobs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"job names must be unique; repeated: {', '.join(duplicates)}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML data arrives as init keyword arguments; the environment must win over it.
        return (env_settings, init_settings)

    def job(self, name: str | None) -> JobSettings:
        """Return the job called ``name``, or the only job when ``name`` is None.

        Raises:
            ConfigError: when no such job exists, or ``name`` is None and there are several.
        """
        if name is None:
            if len(self.jobs) == 1:
                return self.jobs[0]
            listed = ", ".join(job.name for job in self.jobs) or "none"
            raise ConfigError(f"name a job with --job; configured jobs: {listed}")
        for job in self.jobs:
            if job.name == name:
                return job
        listed = ", ".join(job.name for job in self.jobs) or "none"
        raise ConfigError(f"no job named {name!r}; configured jobs: {listed}")

    def resolve(self, path: Path) -> Path:
        """Resolve a path from the TOML file against the file's folder."""
        if path.is_absolute() or self.config_path is None:
            return path
        return (self.config_path.parent / path).resolve()


def find_config(explicit: str | os.PathLike[str] | None) -> Path:
    """Pick the config file: the argument, then $EYEKIOSK_SYNC_CONFIG, then the default paths.

    Raises:
        ConfigError: when no file is found.
    """
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    for candidate in DEFAULT_CONFIG_PATHS:
        if candidate.exists():
            return candidate
    tried = ", ".join(str(path) for path in DEFAULT_CONFIG_PATHS)
    raise ConfigError(
        f"no config file found (tried {tried}); pass --config PATH or set {CONFIG_ENV}, "
        "starting from config.example.toml"
    )


def load_settings(path: Path) -> Settings:
    """Read, validate and return the settings in ``path`` with environment overrides.

    Raises:
        ConfigError: naming the file and every invalid key path.
    """
    data = _read_toml(path)
    _reject_secrets(data, path)
    try:
        settings = Settings(**data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, path)) from None
    except SettingsError as error:
        # pydantic-settings names the field but not the variable; lists and tables need JSON.
        raise ConfigError(
            f"an {ENV_PREFIX}* environment variable could not be parsed ({error}); "
            "values for lists and tables must be JSON, e.g. "
            f'{ENV_PREFIX}AUTH__SCOPES=\'["frames:read", "inventory:write"]\''
        ) from None
    settings.config_path = path.resolve()
    if not settings.state.dir.is_absolute():
        settings.state.dir = settings.resolve(settings.state.dir)
    if settings.auth.client_secret_file is not None:
        settings.auth.client_secret_file = settings.resolve(settings.auth.client_secret_file)
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} not found; copy config.example.toml there and edit it"
        ) from None
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None


def _reject_secrets(data: dict[str, Any], path: Path, prefix: str = "") -> None:
    for key, value in data.items():
        where = f"{prefix}{key}"
        if isinstance(value, dict):
            _reject_secrets(value, path, prefix=f"{where}.")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    _reject_secrets(item, path, prefix=f"{where}[{index}].")
        elif key in SECRET_KEYS:
            env_name = ENV_PREFIX + where.replace(".", "__").upper()
            raise ConfigError(
                f"{path}: {where}: secrets are not read from the TOML file; set "
                f"{env_name} in the environment or use {key}_file with a path"
            )


def format_validation_error(error: ValidationError, path: Path | None = None) -> str:
    """Turn a pydantic error into one line per problem, each with its TOML key path."""
    where = f"{path}: " if path else ""
    lines = [f"{where}{len(error.errors())} invalid setting(s):"]
    for problem in error.errors():
        line = f"  {key_path(problem['loc'])}: {problem['msg']}"
        variable = _env_variable(problem["loc"])
        if variable:
            line += f" (the value comes from the environment variable {variable})"
        lines.append(line)
    return "\n".join(lines)


def _env_variable(location: tuple[int | str, ...]) -> str | None:
    """Return the environment variable that set the value at ``location``, if one is set."""
    names = []
    for part in location:
        if isinstance(part, int):
            break
        names.append(str(part).upper())
        candidate = ENV_PREFIX + "__".join(names)
        if candidate in os.environ:
            return candidate
    return None


def key_path(location: tuple[int | str, ...]) -> str:
    """Format a pydantic error location as a TOML key path, e.g. ``jobs[0].sources[1].path``."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


__all__ = [
    "AuthSettings",
    "CombineSettings",
    "JobSettings",
    "MirrorSettings",
    "OrderSettings",
    "PartnerSettings",
    "Settings",
    "SourceSettings",
    "StateSettings",
    "find_config",
    "format_validation_error",
    "key_path",
    "load_settings",
]
