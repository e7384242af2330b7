"""Settings from the environment (FLOWLOOM_ prefix) and an optional .env file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class GroupWorkspaceRole(BaseModel):
    """One group of a provider's group claim and the role it gives in a workspace (by short name)."""

    group: str = Field(min_length=1)
    workspace: str = Field(min_length=1, description="the workspace's short name")
    role: str = Field(pattern=r"^(admin|editor|operator|viewer)$")


class OIDCProvider(BaseModel):
    """One sign-in provider (generic OIDC by issuer URL, or a preset name)."""

    name: str
    issuer: str = ""
    preset: str = ""  # google | microsoft | github | "" for generic
    client_id: str
    client_secret: SecretStr = SecretStr("")
    tenant: str = ""  # Microsoft Entra tenant
    # Group claims -> workspace roles: [{"group": "data-team", "workspace": "data", "role": "editor"}].
    # A workspace named here is managed by the provider: each sign-in gives the best role the
    # user's groups grant there, or takes them out when no group does.
    groups_claim: str = "groups"
    workspace_roles: list[GroupWorkspaceRole] = Field(default_factory=list)


class EnvSecret(BaseModel):
    """An opted-in environment secret with its bindings (FLOWLOOM_ENV_SECRETS object form)."""

    env: str = Field(description="the environment variable holding the value (never a FLOWLOOM_ one)")
    allowed_destinations: list[str] = Field(default_factory=list, description="hosts or URL prefixes")
    allowed_node_types: list[str] = Field(default_factory=list, description="empty = any node type")


class Settings(BaseSettings):
    """Flowloom's settings; every field reads FLOWLOOM_<NAME> from the environment."""

    model_config = SettingsConfigDict(env_prefix="FLOWLOOM_", env_file=".env", extra="ignore")

    env: str = Field("development", description="development | production")
    data_dir: Path = Field(Path(".flowloom"), description="where embedded services keep their data")
    database_url: str = Field("", description="PostgreSQL (with pgvector) URL; empty = embedded")
    redis_url: str = Field("", description="Redis URL for the Celery broker; empty = embedded")
    broker_url: str = Field(
        "",
        description="Celery broker URL when it is not Redis, e.g. amqp://user:pass@host:5672/vhost (RabbitMQ); "
        "empty = FLOWLOOM_REDIS_URL. Redis is still needed: rate limits, circuit breakers, Celery results",
    )
    web_state: str = Field(
        "local",
        pattern=r"^(local|redis)$",
        description="where the web app keeps each browser tab's page state: local (this machine, Reflex's "
        "default) or redis (in FLOWLOOM_REDIS_URL, so web replicas on several machines serve one session)",
    )
    kafka_bootstrap_servers: str = Field(
        "",
        description="Kafka bootstrap servers; empty = no Kafka; 'embedded' = flowloom up starts a local broker",
    )
    kafka_topic_prefix: str = Field(
        "flowloom",
        pattern=r"^[A-Za-z0-9_.-]{1,200}$",
        description="topics are <prefix>.workflow, .agent, ...",
    )
    kafka_max_message_bytes: int = Field(
        1_000_000,
        ge=10_000,
        description="largest record the relay publishes (the broker's message.max.bytes)",
    )
    health_interval_s: float = Field(
        60.0,
        ge=0,
        description="seconds between system.health_check events of each web and worker process, "
        "written to the outbox when Kafka is set; 0 = none",
    )
    mcp_wait_s: float = Field(
        300.0,
        gt=0,
        le=3600,
        description="how long a tool call of Flowloom's MCP server (/api/mcp) waits for its run",
    )
    breaker_failures: int = Field(
        5, ge=0, le=1000,
        description="failures in a row (no connection, timeout, HTTP 5xx/429) that open a destination's "
        "circuit breaker; 0 = no breaker",
    )  # fmt: skip
    breaker_open_s: float = Field(
        30.0, gt=0, le=3600, description="seconds an open circuit refuses requests before one probe may pass"
    )
    host: str = Field("127.0.0.1", description="address the web app listens on")
    port: int = Field(3000, description="port of the web app (frontend and backend)")
    postgres_port: int = Field(55432, description="port of the embedded PostgreSQL")
    redis_port: int = Field(56379, description="port of the embedded Redis")
    kafka_port: int = Field(59092, description="port of the embedded Kafka-protocol broker")
    workers: int = Field(2, ge=1, description="Celery worker processes started by `flowloom up`")
    queue: str = Field(
        "flowloom", pattern=r"^[A-Za-z0-9_.:-]{1,100}$", description="Celery queue the engine's steps go to"
    )
    secret_key: SecretStr = Field(SecretStr(""), description="signs sessions; generated in data_dir if empty")
    oidc_providers: list[OIDCProvider] = Field(
        default_factory=list,
        description='sign-in providers, a JSON list: {"name", "issuer" or "preset" (google | microsoft | '
        'github), "client_id", "client_secret", "tenant", "groups_claim", "workspace_roles": [{"group", '
        '"workspace", "role"}]}; empty = the local admin account',
    )
    admin_emails: list[str] = Field(
        default_factory=list,
        description="JSON list of e-mails or @domains made admin when their provider says the e-mail is verified",
    )
    # Engine tuning
    step_lease_s: float = Field(30.0, gt=0, description="a running step's lease; expired = worker died")
    inline_steps: int = Field(
        20, ge=0, description="steps a worker may run in a row without a broker hop (0: always send)"
    )
    sweep_interval_s: float = Field(5.0, gt=0, description="how often workers look for lost steps")
    prune_interval_s: float = Field(
        600.0, gt=0, description="how often a worker applies the workspaces' retention (docs/operations.md)"
    )
    prune_batch_size: int = Field(
        500, ge=1, le=10_000, description="rows the prune job deletes or clears per transaction"
    )
    schedule_poll_s: float = Field(
        1.0, gt=0, description="how often `flowloom scheduler` looks for due ticks"
    )
    max_payload_bytes: int = Field(1_000_000, gt=0, description="largest step input/output stored")
    guardrails: dict[str, Any] = Field(
        default_factory=dict,
        description="instance-wide guardrails as JSON (the GUARDRAILS_CONFIG shape, docs/guardrails.md); "
        "each workflow's policy.guardrails and each node's guardrails narrow it",
    )
    sql_connections: dict[str, str] = Field(default_factory=dict, description="name -> URL for tool.sql")
    mcp_servers: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='MCP servers agents may use, by name: {"name": {"command": ["prog", "arg"], "env": {...}}} '
        '(stdio) or {"name": {"url": "https://..."}} (streamable HTTP)',
    )
    # "Describe your workflow" in the editor (engine/workflow_generation.py): the model that drafts one
    generator_provider: str = Field(
        "openai",
        description="provider of the workflow generator: openai (any compatible server), anthropic, openvino",
    )
    generator_model: str = Field(
        "",
        description="model of the workflow generator (for openvino a model folder); empty = generation off",
    )
    generator_base_url: str = Field(
        "", description="API base URL of the generator's provider; empty = its default"
    )
    generator_api_key_secret: str = Field(
        "", description="name of the secret (Secrets page) holding the generator's API key; empty = none"
    )
    generator_max_tokens: int = Field(
        4096, ge=256, le=200_000, description="most tokens in one generator answer"
    )
    generator_timeout_s: float = Field(180.0, gt=0, description="how long one generator answer may take")
    # Trust boundaries (README "Security model")
    env_secrets: dict[str, str | EnvSecret] = Field(
        default_factory=dict,
        description=(
            "opt-in: secret name -> environment variable that holds it (never a FLOWLOOM_ variable), or "
            '{"env": VAR, "allowed_destinations": [...], "allowed_node_types": [...]}; '
            "empty = secrets come from the encrypted store only"
        ),
    )
    max_body_bytes: int = Field(8_000_000, gt=0, description="largest request body (413 above)")
    max_anonymous_body_bytes: int = Field(
        65_536, gt=0, description="largest request body on endpoints that need no sign-in"
    )
    max_definition_nodes: int = Field(2000, gt=0, description="nodes in one workflow definition")
    max_definition_edges: int = Field(5000, gt=0, description="edges in one workflow definition")
    max_node_config_bytes: int = Field(262_144, gt=0, description="one node's config as JSON")
    max_definition_string: int = Field(100_000, gt=0, description="longest string in a definition")
    max_definition_depth: int = Field(32, gt=0, description="deepest nesting of lists/objects")
    max_step_attempts: int = Field(
        20, ge=1, description="hard cap on attempts of one step, whatever its retry policy says"
    )
    max_subworkflow_depth: int = Field(
        5, ge=1, description="deepest nesting of sub-workflow child runs; a deeper call fails its step"
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header values accepted when bound beyond loopback (e.g. flowloom.example.com)",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="origins allowed to call the API cross-site; empty = same-origin"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses/CIDRs of reverse proxies whose X-Forwarded-Proto is believed (HSTS, Secure cookies)",
    )
    auth_failures_before_backoff: int = Field(
        5, ge=1, description="failed sign-ins / API-key tries per client or key prefix before back-off"
    )
    openvino_telemetry: bool = Field(False, description="let OpenVINO send usage telemetry")
    # Observability (docs/operations.md "Metrics, logs and traces")
    log_level: str = Field(
        "INFO", pattern=r"^(?i:debug|info|warning|error|critical)$", description="log level of every process"
    )
    log_format: str = Field("json", pattern=r"^(json|text)$", description="json (one object a line) | text")
    metrics_token: SecretStr = Field(
        SecretStr(""), description="bearer token a Prometheus scraper sends to /metrics; empty = admins only"
    )
    metrics_port: int = Field(
        0, ge=0, le=65535, description="a lone `flowloom worker` serves its own metrics on this port; 0 = off"
    )
    otlp_endpoint: str = Field(
        "",
        description="OTLP/HTTP collector (e.g. http://127.0.0.1:4318): traces go to <it>/v1/traces; empty = off",
    )

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
