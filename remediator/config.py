"""The daemon config: models with SPEC's keys and defaults, `${ENV}` and `*_file` resolution.

Loading is pure over (text, environment, base folder); `load_config` is the thin file wrapper.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import unquote, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from remediator.core import yamlstrict
from remediator.core.durations import parse_rate
from remediator.core.policy import Duration, RateSpec
from remediator.errors import ConfigError

DEFAULT_CONFIG = Path("remediator.yaml")
_ENV_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


class Section(BaseModel):
    """Unknown keys are errors; `KEY_file` reads KEY's secret value from a file."""

    # A field's docstring is its description in docs/reference.md and `remediator schema`,
    # read by remediator/fielddocs.py when they are made, not at every start.
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        base = Path((info.context or {}).get("base_dir", "."))
        resolved = dict(data)
        for key in [k for k in data if isinstance(k, str) and k.endswith("_file")]:
            field = key.removesuffix("_file")
            if field not in cls.model_fields:
                continue  # left in place: extra="forbid" reports it by its own name
            if field in data:
                raise ValueError(f"set either {field} or {key}, not both")
            path = base / str(data[key])
            text = read_secret_file(path, key, info)
            del resolved[key]
            if text is not None:
                resolved[field] = text
            elif _holds_secret(cls.model_fields[field].annotation):
                resolved[field] = f"(unread {path})"
            # else (state_file): the key's default stands in, as the note says
        return resolved


def read_secret_file(path: Path, key: str, info: ValidationInfo) -> str | None:
    """The file's text. When it cannot be read: ValueError, or for `check` and `simulate`
    (parse_config's `unset`, passed as the context's `unread`) a note and None."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        message = f"{key}: cannot read {path}: {exc.strerror}"
        unread = (info.context or {}).get("unread")
        if unread is None:
            raise ValueError(message) from None
        unread.append(message)
        return None


def _holds_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_holds_secret(a) for a in get_args(annotation))


def _non_empty(value: SecretStr) -> SecretStr:
    # An empty credential (an unset ${VAR:-}, an empty file) would accept an empty header.
    if not value.get_secret_value():
        raise ValueError("must not be empty")
    return value


NonEmptySecret = Annotated[SecretStr, AfterValidator(_non_empty)]


class BasicCredentials(Section):
    username: str
    """The user name Alertmanager sends."""
    password: NonEmptySecret
    """The password (or `password_file`)."""


class EndpointAuth(Section):
    """Every endpoint's block may instead be `{allow_unauthenticated: true}`: deliberately open."""

    allow_unauthenticated: bool = False
    """true: this endpoint is open on purpose (no credentials may be set beside it)."""

    def _one_of(self, *given: object) -> None:
        present = sum(value is not None for value in given)
        if self.allow_unauthenticated and present:
            raise ValueError("allow_unauthenticated: true cannot be combined with credentials")
        if not self.allow_unauthenticated and present != 1:
            raise ValueError(self._which)

    _which = "set credentials"


class AlertmanagerAuth(EndpointAuth):
    bearer_token: NonEmptySecret | None = None
    """The token Alertmanager sends as `Authorization: Bearer` (its
    `http_config.authorization.credentials`)."""
    basic: BasicCredentials | None = None
    """HTTP basic auth instead of a bearer token (`basic_auth` in Alertmanager)."""
    _which = "set exactly one of bearer_token or basic (or allow_unauthenticated: true)"

    @model_validator(mode="after")
    def _exactly_one(self) -> AlertmanagerAuth:
        self._one_of(self.bearer_token, self.basic)
        return self


class DatadogAuth(EndpointAuth):
    header: str = "X-Remediator-Token"
    """The header the Datadog webhook sends the token in (its custom headers)."""
    token: NonEmptySecret | None = None
    """The token the Datadog webhook sends in `header`."""
    _which = "set token (or allow_unauthenticated: true)"

    @model_validator(mode="after")
    def _token(self) -> DatadogAuth:
        self._one_of(self.token)
        return self


_TOKEN_NAME = re.compile(r"^[a-zA-Z0-9_.-]{1,64}\Z")


class ApiAuth(EndpointAuth):
    """Named tokens: the caller's identity is `api:<name>` (who approved, paused, reset)."""

    tokens: dict[str, NonEmptySecret] | None = None
    """Named API tokens: the caller of `NAME`'s token acts as `api:NAME` (approvals,
    pause, reset); `NAME_file` reads one from a file."""
    bearer_token: NonEmptySecret | None = None
    """Shorthand for one token named `api` (`tokens: {api: ...}`)."""
    read: bool = False
    """true: `GET /api/v1/*` needs a token too."""
    _which = "set tokens or bearer_token (or allow_unauthenticated: true)"

    @field_validator("tokens", mode="before")
    @classmethod
    def _token_files(cls, value: Any, info: ValidationInfo) -> Any:
        return named_secrets(value, info, "token")

    @model_validator(mode="after")
    def _named(self) -> ApiAuth:
        self._one_of(self.tokens if self.tokens else None, self.bearer_token)
        for name in self.tokens or {}:
            if not _TOKEN_NAME.match(name):
                raise ValueError(f"token name {name!r}: use letters, digits, _ . - (1-64)")
        values = [t.get_secret_value() for t in self.identities().values()]
        if len(set(values)) != len(values):
            raise ValueError("two token names share one token: each identity needs its own")
        return self

    def identities(self) -> dict[str, SecretStr]:
        """identity (`api:NAME`) -> its token."""
        if self.bearer_token is not None:
            return {"api:api": self.bearer_token}
        return {f"api:{name}": token for name, token in (self.tokens or {}).items()}


class AuthConfig(Section):
    alertmanager: AlertmanagerAuth | None = None
    """Auth of `POST /webhook/alertmanager`; none: open (loopback only)."""
    datadog: DatadogAuth | None = None
    """Auth of `POST /webhook/datadog`; none: open (loopback only)."""
    api: ApiAuth | None = None
    """Auth of the API's writes and `/-/reload`; none: open (loopback only), every caller
    is `api:anonymous`."""


class SlackConfig(Section):
    bot_token: SecretStr | None = None
    """The bot's `xoxb-` token; Slack is used only when bot_token, signing_secret and
    channel are all set."""
    signing_secret: SecretStr | None = None
    """The app's signing secret: every interaction request's signature is checked."""
    channel: str | None = None
    """The channel ID approval requests (and `notify` without a channel) post to."""
    approvers: tuple[str, ...] = ()
    """Who may approve when a policy names no `guards.approvers`: Slack user IDs and
    `api:NAME`. Empty: any API token approves, nobody in Slack."""
    api_url: str = "https://slack.com/api/"
    """Slack's Web API base URL (tests point it at a loopback stand-in)."""
    team_id: str | None = None
    """The workspace ID: clicks from any other workspace are refused."""
    post_results: bool = False
    """true: also post every executed or failed action to the channel."""


class HttpConfig(Section):
    secrets: dict[str, SecretStr] = Field(default_factory=dict)
    """The older place of `secrets` (same ${secret:NAME} values); prefer `secrets`."""


def named_secrets(value: Any, info: ValidationInfo, what: str) -> Any:
    """A mapping of name -> secret where `NAME_file: PATH` reads NAME's value from a file
    (`secrets: {pg_password_file: /run/secrets/pg}` defines ${secret:pg_password})."""
    if not isinstance(value, dict):
        return value
    base = Path((info.context or {}).get("base_dir", "."))
    resolved: dict[str, Any] = {}
    for key, raw in value.items():
        name = str(key)
        if name.endswith("_file"):
            name = name.removesuffix("_file")
            path = base / str(raw)
            raw = read_secret_file(path, str(key), info)  # noqa: PLW2901
            if raw is None:
                raw = f"(unread {path})"  # noqa: PLW2901
        if name in resolved:
            raise ValueError(f"{what} {name} is set twice")
        resolved[name] = raw
    return resolved


_SECRET_NAME = re.compile(r"^[A-Za-z0-9_]+\Z")


class DockerConfig(Section):
    url: str = "unix:///var/run/docker.sock"
    """The Docker Engine API: `unix://` socket or `tcp://` address."""


class KubernetesConfig(Section):
    kubeconfig: str | None = None
    """A kubeconfig file; none: the in-cluster service account, then `~/.kube/config`."""
    context: str | None = None
    """The kubeconfig context; none: its current context."""
    protected_namespaces: tuple[str, ...] = ("kube-system",)
    """Namespaces no policy may touch, whatever its allow_targets."""


class PrometheusConfig(Section):
    url: str = "http://127.0.0.1:9090"
    """Prometheus, for `condition` and `verify.prometheus` queries."""


class LimitsConfig(Section):
    max_concurrent_actions: int = Field(default=4, ge=1, le=256)
    """Actions running at once; more wait their turn (1-256)."""
    global_rate: RateSpec = parse_rate("30/1h")
    """At most this many actions of all policies together in the window (`N/duration`)."""
    approval_ttl: Duration = timedelta(minutes=15)
    """How long an approval request waits before it is `expired`."""


class Config(Section):
    listen: str = "127.0.0.1:9595"
    """HOST:PORT to listen on (`0.0.0.0:9595` in a container; off loopback every
    endpoint needs auth or `allow_unauthenticated: true`)."""
    state: str = "sqlite:///./remediator.db"
    """The state store: `sqlite:///PATH` (relative to the config file) or
    `postgresql://user:pass@host:5432/db` (several replicas); `state_file` reads it."""
    policies: tuple[str, ...] = ("./policies",)
    """Policy files or folders of `*.yaml`/`*.yml` (not their subfolders), relative to the
    config file."""
    dry_run: bool = False
    """true: decide and record every guard, never execute."""
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest webhook body accepted (413 beyond), chunked bodies too."""
    drain_timeout: Duration = timedelta(seconds=30)
    """How long SIGTERM waits for running actions before recording them `interrupted`
    (keep it under the orchestrator's kill grace period)."""
    action_lease: Duration = timedelta(seconds=30)
    """An action whose replica has not renewed its lease this long is recorded
    `interrupted` by any replica (the holder renews every third of it; at least 1s)."""
    auth: AuthConfig = AuthConfig()
    """Credentials per endpoint."""
    slack: SlackConfig = SlackConfig()
    """Approvals and `notify` in Slack."""
    docker: DockerConfig = DockerConfig()
    """Where the docker actions run."""
    http: HttpConfig = HttpConfig()
    """Kept for older configs."""
    kubernetes: KubernetesConfig = KubernetesConfig()
    """Where the kubernetes actions run."""
    prometheus: PrometheusConfig = PrometheusConfig()
    """Where conditions and verify queries go."""
    limits: LimitsConfig = LimitsConfig()
    """Limits across all policies."""
    retention: Duration = timedelta(days=30)
    """Audit rows older than this are pruned (at least 1h); a pending approval and what
    dedup still needs for an episode seen within it are kept."""
    secrets: dict[str, NonEmptySecret] = Field(default_factory=dict)
    """Values of `${secret:NAME}` in action params, filled in only when the action runs
    (`NAME_file` reads one from a file)."""
    # Where relative paths (policies, sqlite file) are resolved: the config file's folder.
    base_dir: str = Field(default=".", exclude=True)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("secrets", mode="before")
    @classmethod
    def _secrets_files(cls, value: Any, info: ValidationInfo) -> Any:
        resolved = named_secrets(value, info, "secret")
        for name in resolved if isinstance(resolved, dict) else ():
            if not _SECRET_NAME.match(name):
                raise ValueError(f"secret name {name!r}: use letters, digits and _")
        return resolved

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: timedelta) -> timedelta:
        if value < timedelta(hours=1):
            raise ValueError("must be at least 1h (the audit log is what operators read)")
        return value

    def action_secrets(self) -> dict[str, SecretStr]:
        """${secret:NAME} values: `secrets`, then the older `http.secrets`."""
        return {**self.http.secrets, **self.secrets}

    @field_validator("action_lease")
    @classmethod
    def _lease(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s (it is renewed every third of it)")
        return value

    @field_validator("state")
    @classmethod
    def _state(cls, value: str) -> str:
        parse_state_url(value, Path("."))
        return value

    def policy_paths(self) -> list[Path]:
        return [Path(self.base_dir) / p for p in self.policies]

    @property
    def policies_configured(self) -> bool:
        """False when `policies` is the built-in default, which may be absent."""
        return "policies" in self.model_fields_set

    def state_target(self) -> StateTarget:
        return parse_state_url(self.state, Path(self.base_dir))

    def secret_values(self) -> list[str]:
        """Every secret value, so the log redactor can mask one that leaks into a message."""
        found: list[str] = []

        def walk(model: BaseModel) -> None:
            for name in type(model).model_fields:
                value = getattr(model, name)
                if isinstance(value, SecretStr) and value.get_secret_value():
                    found.append(value.get_secret_value())
                elif isinstance(value, dict):
                    found.extend(
                        v.get_secret_value() for v in value.values() if isinstance(v, SecretStr)
                    )
                elif isinstance(value, BaseModel):
                    walk(value)

        walk(self)
        for url in (self.state, self.prometheus.url):  # scheme://user:PASSWORD@host/...
            password = urlsplit(url).password
            if password:
                found.append(unquote(password))
                found.append(password)
        return found


@dataclass(frozen=True, slots=True)
class StateTarget:
    kind: Literal["sqlite", "postgresql"]
    path: str  # the SQLite file, or the PostgreSQL URL as given


def parse_state_url(url: str, base: Path) -> StateTarget:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///./x.db and sqlite:///rel.db are relative; sqlite:////abs/x.db is absolute.
        raw = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not raw:
            raise ValueError("sqlite state URL needs a file path, e.g. sqlite:///./remediator.db")
        if raw == ":memory:":
            return StateTarget("sqlite", raw)
        path = Path(raw)
        return StateTarget("sqlite", str(path if path.is_absolute() else base / path))
    if parts.scheme in ("postgresql", "postgres"):
        if not parts.hostname and "host=" not in parts.query:
            raise ValueError(
                "postgresql state URL needs a host, e.g. postgresql://user@db:5432/name"
            )
        return StateTarget("postgresql", url)
    raise ValueError(
        f"unsupported state URL scheme {parts.scheme!r}; use sqlite:///PATH or postgresql://..."
    )


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen must be HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104  # ":9595" means all interfaces, as in Go


ENDPOINTS = (
    ("/webhook/alertmanager", "alertmanager"),
    ("/webhook/datadog", "datadog"),
    ("/api/v1 (writes) and /-/reload", "api"),
)


def open_endpoints(config: Config) -> list[tuple[str, str]]:
    """(endpoint, auth key) of every endpoint with no auth block at all."""
    return [(ep, key) for ep, key in ENDPOINTS if getattr(config.auth, key) is None]


def network_problems(config: Config) -> list[str]:
    """`auth.KEY: message` for each endpoint left open on a non-loopback listen address.

    On loopback only local processes can reach it, and `serve` warns; on any other address
    one unauthenticated POST could act, so an open endpoint must be said out loud.
    """
    host, _ = parse_listen(config.listen)
    if is_loopback(host):
        return []
    return [
        f"auth.{key}: {endpoint} has no auth while listening on {config.listen}; set "
        f"credentials, or auth.{key}: {{allow_unauthenticated: true}} to leave it open"
        for endpoint, key in open_endpoints(config)
    ]


@functools.lru_cache(maxsize=64)  # asked per request with the Host header's name
def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname other than localhost may resolve to anything


def _substitute(node: Any, path: str, env: Mapping[str, str], unset: list[str] | None) -> Any:
    if isinstance(node, dict):
        return {
            k: _substitute(v, f"{path}.{k}" if path else str(k), env, unset)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_substitute(v, f"{path}[{i}]", env, unset) for i, v in enumerate(node)]
    if isinstance(node, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match["name"], match["default"]
            if name in env:
                return env[name]
            if default is not None:
                return default
            message = f"{path}: environment variable {name} is not set"
            if unset is None:
                raise ConfigError(message)
            unset.append(message)
            return match[0]  # kept as written: the value is checked as a placeholder

        return _ENV_REF.sub(replace, node)
    return node


def parse_config(
    text: str,
    filename: str,
    env: Mapping[str, str],
    base_dir: Path = Path("."),
    unset: list[str] | None = None,
) -> Config:
    """Config from YAML text. ConfigError lines read `FILE: field: message`.

    `unset`: for `check` and `simulate`, which need no secret values: a `${VAR}` that is not
    in `env` is not an error but a line `FILE: field: ...` added to this list, and the text
    `${VAR}` stays the value; a secret's `*_file` that cannot be read is a line too, its value
    a placeholder (`state_file`: the default state stands in). None (`serve`): both are
    ConfigErrors."""
    try:
        raw = yamlstrict.load(text)
    except Exception as exc:  # noqa: BLE001  # every YAML error becomes one ConfigError
        raise ConfigError(f"{filename}: yaml: {yamlstrict.describe(exc)}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{filename}: (config): expected a mapping")
    notes: list[str] = []
    try:
        substituted = _substitute(raw, "", env, None if unset is None else notes)
    except ConfigError as exc:
        raise ConfigError(f"{filename}: {exc}") from None
    substituted["base_dir"] = str(base_dir)
    context: dict[str, Any] = {"base_dir": str(base_dir)}
    if unset is not None:
        context["unread"] = notes  # a `*_file` that cannot be read: a note too
    try:
        config = Config.model_validate(substituted, context=context)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "(config)"
            lines.append(f"{filename}: {where}: {error['msg'].removeprefix('Value error, ')}")
        raise ConfigError("\n".join(lines)) from None
    finally:
        if unset is not None:  # a union may validate a section twice: each note once
            unset.extend(f"{filename}: {line}" for line in dict.fromkeys(notes))
    problems = network_problems(config)
    if problems:
        raise ConfigError("\n".join(f"{filename}: {line}" for line in problems))
    return config


def kubeconfig_source(kubeconfig: str | None) -> str | None:
    """Where the client would load its config from, or None when there is none."""
    if kubeconfig:
        return kubeconfig if Path(kubeconfig).expanduser().exists() else None
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "in-cluster service account"
    default = Path(os.environ.get("KUBECONFIG", "~/.kube/config")).expanduser()
    return str(default) if default.exists() else None


def load_config(
    path: Path | None, env: Mapping[str, str] | None = None, unset: list[str] | None = None
) -> Config:
    """`path` None: ./remediator.yaml if present, else built-in defaults. `unset`: as in
    parse_config (`check` and `simulate` pass a list; `serve` does not)."""
    environ = os.environ if env is None else env
    if path is None:
        if not DEFAULT_CONFIG.exists():
            return Config()
        path = DEFAULT_CONFIG
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    return parse_config(text, str(path), environ, path.parent, unset)
