"""The small error hierarchy every Flowloom layer raises, and the one enum of its codes.

Every error carries an `ErrorCode`: the API answers it as problem+json (app/problems.py maps
each code to its HTTP status), the UI and the CLI show `user_message(exc)`. A code's value is the
string the API, the validator's issues and /login?error=<code> have always used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Literal

Severity = Literal["error", "warning"]


class ErrorCode(StrEnum):
    """Every code an error, a validation issue or a refusal carries; the value is what clients see."""

    # The default code of each FlowloomError subclass.
    FAILED = "failed"  # FlowloomError itself: something Flowloom refused, with no closer code
    SETTING_INVALID = "setting_invalid"  # ConfigError
    DEFINITION_INVALID = "definition_invalid"  # DefinitionError
    VALIDATION_FAILED = "validation_failed"  # ValidationError
    STEP_FAILED = "step_failed"  # StepError
    STEP_TIMEOUT = "step_timeout"  # a step ran past its timeout_s
    POLICY_VIOLATION = "policy_violation"  # PolicyViolation
    EGRESS_REFUSED = "egress_refused"  # PolicyViolation of the egress policy
    SECRET_INVALID = "secret_invalid"  # SecretsError
    SECRET_EXISTS = "secret_exists"  # SecretExists
    APPROVAL_CONFLICT = "approval_conflict"  # ApprovalError: decided, voted, expired, not waiting
    USER_REFUSED = "user_refused"  # UserError
    API_KEY_INVALID = "api_key_invalid"  # ApiKeyError
    EDIT_REFUSED = "edit_refused"  # EditRefused: an edit the editor will not make

    # Requests: what a route or the HTTP gate refused.
    REQUEST_INVALID = "request_invalid"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    SIGN_IN_REQUIRED = "sign_in_required"
    API_KEY_UNKNOWN = "api_key_unknown"
    FORBIDDEN = "forbidden"
    NOT_IN_POLICY = "not_in_policy"
    CROSS_SITE_REFUSED = "cross_site_refused"
    HOST_NOT_ALLOWED = "host_not_allowed"
    BODY_TOO_LARGE = "body_too_large"
    RATE_LIMITED = "rate_limited"
    RUN_QUOTA_EXCEEDED = "run_quota_exceeded"  # a workspace started its runs_per_hour already
    DATABASE_UNAVAILABLE = "database_unavailable"
    DATABASE_ERROR = "database_error"
    WORKFLOW_NOT_FOUND = "workflow_not_found"
    VERSION_NOT_FOUND = "version_not_found"
    RUN_NOT_FOUND = "run_not_found"
    RUN_ENDED = "run_ended"
    RUN_NOT_ENDED = "run_not_ended"  # re-run or fork of a run that is still going
    RERUN_STEP_INVALID = "rerun_step_invalid"  # re-run from a step the run never ran (or skipped)
    INLINE_NEEDS_EDITOR = "inline_needs_editor"
    VERSION_NOT_PUBLISHED = "version_not_published"  # below editor, a version that is not published
    VERSION_STATE = "version_state"  # a review step the version's state does not allow (409)
    SELF_REVIEW = "self_review"  # the author or submitter of a version reviewing it
    SECRET_NOT_FOUND = "secret_not_found"
    USER_NOT_FOUND = "user_not_found"
    API_KEY_NOT_FOUND = "api_key_not_found"
    WORKSPACE_NOT_FOUND = "workspace_not_found"
    WORKSPACE_INVALID = "workspace_invalid"  # a bad short name, name or role
    SHARE_NOT_FOUND = "share_not_found"  # no such share of that workflow
    SHARE_INVALID = "share_invalid"  # a share with no recipient, a bad permission, the own workspace
    NO_WORKSPACE = "no_workspace"  # the caller is a member of no workspace
    KEY_NEEDS_SESSION = "key_needs_session"
    APPROVAL_NOT_FOUND = "approval_not_found"
    APPROVAL_FORBIDDEN = "approval_forbidden"
    APPROVAL_INVALID = "approval_invalid"
    TRIGGER_NOT_FOUND = "trigger_not_found"
    TRIGGER_PAUSED = "trigger_paused"
    SIGNATURE_INVALID = "signature_invalid"  # an inbound webhook's signature does not verify
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"  # an inbound webhook's timestamp is too old or new
    IDEMPOTENCY_MISMATCH = "idempotency_mismatch"  # an Idempotency-Key reused with another body
    DEAD_LETTER_NOT_FOUND = "dead_letter_not_found"
    CHAT_SESSION_NOT_FOUND = "chat_session_not_found"  # unknown, or another owner's
    CHAT_BUSY = "chat_busy"  # a chat message while the previous one is still being answered
    AGENT_NOT_FOUND = "agent_not_found"  # no saved agent with that id
    AGENT_TRANSITION_INVALID = "agent_transition_invalid"  # a lifecycle transition the design does not allow
    AGENT_NOT_READY = "agent_not_ready"  # a saved agent asked to work while not READY (or EXECUTING)
    AGENT_CHECK_FAILED = "agent_check_failed"  # a saved agent failed a config, resource or permission check
    NO_CAPABLE_AGENT = "no_capable_agent"  # no READY saved agent has the capability a node asks for

    # Sign-in refusals: the value is what /login?error=<code> carries.
    STATE = "state"
    ID_TOKEN = "id_token"
    ISSUER = "issuer"
    PROVIDER_REFUSED = "provider_refused"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    UNKNOWN_PROVIDER = "unknown_provider"
    INACTIVE = "inactive"
    BAD_CREDENTIALS = "bad_credentials"
    TOO_MANY_ATTEMPTS = "too_many_attempts"  # also Throttled
    SETUP_CODE = "setup_code"
    SETUP_DONE = "setup_done"
    PASSWORD_SHORT = "password_short"
    PASSWORD_LONG = "password_long"
    PASSWORDS_DIFFER = "passwords_differ"
    EMAIL = "email"

    # Validation issues (Issue.code) and the editor's refused connections.
    INVALID = "invalid"
    DUPLICATE_ID = "duplicate_id"
    BAD_ID = "bad_id"
    UNKNOWN_NODE_TYPE = "unknown_node_type"
    CONFIG_INVALID = "config_invalid"
    TEMPLATE_NOT_ALLOWED = "template_not_allowed"
    BAD_TEMPLATE = "bad_template"
    BAD_CONDITION = "bad_condition"
    DANGLING_EDGE = "dangling_edge"
    DUPLICATE_EDGE = "duplicate_edge"
    SELF_LOOP = "self_loop"
    UNKNOWN_PORT = "unknown_port"
    PORT_TYPE_MISMATCH = "port_type_mismatch"
    UNCONNECTED_INPUT = "unconnected_input"
    INPUTS_INVALID = "inputs_invalid"
    INPUT_INVALID = "input_invalid"
    MISSING_START = "missing_start"
    MULTIPLE_START = "multiple_start"
    MISSING_END = "missing_end"
    UNREACHABLE = "unreachable"
    NO_PATH_TO_TERMINAL = "no_path_to_terminal"
    CYCLE = "cycle"
    TRIGGER_INVALID = "trigger_invalid"
    DSL_UNSUPPORTED = "dsl_unsupported"  # a definition feature the Python DSL export cannot write
    SUBWORKFLOW_RECURSION = "subworkflow_recursion"  # a called workflow calls the caller again
    ON_ERROR_MISMATCH = "on_error_mismatch"  # a node's on_error and its error edges disagree
    UNKNOWN_REFERENCE = "unknown_reference"  # an expression names a node, input or port that is not there

    # Step failures a node names (StepError(code=...)); stored with the failed step's error.
    INPUT_MISSING = "input_missing"  # nothing to work on: an empty prompt, text or label list
    LLM_REPLY_INVALID = "llm_reply_invalid"  # a model provider answered something unusable
    AGENT_MAX_ITERATIONS = "agent_max_iterations"
    OUTPUT_SCHEMA_MISMATCH = "output_schema_mismatch"  # an agent's answer never matched its output_schema
    UNKNOWN_TOOL = "unknown_tool"
    CONNECTION_UNKNOWN = "connection_unknown"  # tool.sql: a connection name not configured
    PAYLOAD_INVALID = "payload_invalid"  # webhook.send: a payload that is not JSON
    MODEL_NOT_FOUND = "model_not_found"  # a local model that is not on disk (convert it on the Models page)
    SUBWORKFLOW_DEPTH = "subworkflow_depth"  # child runs nested deeper than FLOWLOOM_MAX_SUBWORKFLOW_DEPTH
    CHILD_RUN_FAILED = "child_run_failed"  # the child run of a sub-workflow step failed or was cancelled
    CODE_FAILED = "code_failed"  # tool.code: the code raised, or ended without an answer
    SANDBOX_LIMIT = "sandbox_limit"  # tool.code: the code passed its memory, CPU-time or output limit
    SANDBOX_UNAVAILABLE = "sandbox_unavailable"  # tool.code: no sandbox (bubblewrap) on this worker
    CIRCUIT_OPEN = "circuit_open"  # an HTTP destination's circuit breaker is open after repeated failures
    GUARDRAIL_VIOLATED = "guardrail_violated"  # a guardrails rule refused the step (engine/guardrails.py)
    GUARDRAIL_INVALID = "guardrail_invalid"  # a guardrails object that does not parse (validation issue)
    # Generating a workflow from a description (engine/workflow_generation.py).
    GENERATION_REFUSED = "generation_refused"  # the model's workflow still did not validate after a repair
    GENERATION_FAILED = (
        "generation_failed"  # the model could not be asked (not configured, failed, timed out)
    )


def title_of(code: ErrorCode) -> str:
    """A short human title for a code: "port_type_mismatch" -> "Port type mismatch"."""
    return code.value.replace("_", " ").capitalize()


class FlowloomError(Exception):
    """Base of every error Flowloom raises on purpose: its `code`, and where (`node_id`, `field`)."""

    code: ErrorCode = ErrorCode.FAILED

    def __init__(
        self,
        message: str = "",
        *,
        code: ErrorCode | None = None,
        node_id: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.node_id = node_id
        self.field = field


def user_message(exc: BaseException) -> str:
    """What a person is shown for `exc`: the same text in API answers, the UI's toasts and the CLI."""
    text = str(exc).strip()
    return text or title_of(exc.code if isinstance(exc, FlowloomError) else ErrorCode.FAILED)


class ConfigError(FlowloomError):
    """A setting is missing or wrong; the message names the setting to fix."""

    code = ErrorCode.SETTING_INVALID


class DefinitionError(FlowloomError):
    """A workflow definition cannot be parsed; says where (path/line, node id)."""

    code = ErrorCode.DEFINITION_INVALID

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        node_id: str | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.line = line
        where = []
        if node_id:
            where.append(f'node "{node_id}"')
        if path:
            where.append(path)
        if line is not None:
            where.append(f"line {line}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message, node_id=node_id)


@dataclass(frozen=True)
class Issue:
    """One problem found by validation, located by node/edge id and field."""

    message: str
    code: ErrorCode = ErrorCode.INVALID
    node_id: str | None = None
    edge_id: str | None = None
    field: str | None = None
    severity: Severity = "error"

    def __str__(self) -> str:
        where = []
        if self.node_id:
            where.append(f'node "{self.node_id}"')
        if self.edge_id:
            where.append(f'edge "{self.edge_id}"')
        if self.field:
            where.append(self.field)
        prefix = f"{': '.join(where)}: " if where else ""
        return f"{self.severity}: {prefix}{self.message}"

    def to_dict(self) -> dict:
        return {**asdict(self), "code": str(self.code)}


class ValidationError(FlowloomError):
    """A definition parsed but is wrong; carries every issue found (the first error says where)."""

    code = ErrorCode.VALIDATION_FAILED

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        found = [i for i in issues if isinstance(i, Issue)]  # a str after a round trip through Celery
        first = next((i for i in found if i.severity == "error"), found[0] if found else None)
        super().__init__(
            "; ".join(str(i) for i in issues) or "invalid workflow",
            node_id=first.node_id if first else None,
            field=first.field if first else None,
        )


class StepError(FlowloomError):
    """A step failed; `retryable` tells the engine whether retrying may help, and `retry_after_s`
    how long it should wait at least (a server's Retry-After, an open circuit breaker)."""

    code = ErrorCode.STEP_FAILED

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        node_id: str | None = None,
        field: str | None = None,
        code: ErrorCode | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        text = f'node "{node_id}": {message}' if node_id else message
        super().__init__(text, code=code, node_id=node_id, field=field)


class PolicyViolation(FlowloomError):
    """A guardrail (egress policy, expression sandbox, size cap) refused an action."""

    code = ErrorCode.POLICY_VIOLATION


class GuardrailViolation(PolicyViolation):
    """A guardrails rule fired; `violation` says which rule, where and what it saw (redacted)."""

    code = ErrorCode.GUARDRAIL_VIOLATED

    def __init__(
        self, message: str, *, violation: object, node_id: str | None = None, field: str | None = None
    ):
        super().__init__(message, node_id=node_id, field=field)
        self.violation = violation


class EgressRefused(PolicyViolation):
    """The egress policy refused an outbound request (address kind, scheme, redirect, size)."""

    code = ErrorCode.EGRESS_REFUSED
