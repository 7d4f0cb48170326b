"""The daemon config: the `Config` model, with SPEC's keys and defaults, and its smaller
sections. Loading a file is remediator/config_file.py's; nothing here reads the environment.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator

from remediator.addresses import StateTarget, parse_listen, parse_state_url
from remediator.config_auth import AuthConfig
from remediator.config_section import NonEmptySecret, Section, named_secrets
from remediator.core.durations import parse_rate
from remediator.core.policy import Duration, RateSpec


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
