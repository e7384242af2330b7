"""The node contract: everything a node type may import from the engine, and nothing else.

A node family declares node types (`register`, `Port`, a pydantic config model), runs with a
`StepContext` (templates, egress-checked HTTP, secrets, events, its own tables), raises the
engine's errors, may offer background jobs that workers run (`register_job`), and is found
through the `flowloom.nodes` entry-point group. docs/nodes.md explains how to write one.
"""

from engine.config_fields import FIXED, SECRET_FORMAT, SECRET_VALUES
from engine.contract.context import StepContext
from engine.contract.documents import (
    MEMORY_COLLECTION_PATTERN,
    TEXT_KEYS,
    Document,
    as_documents,
    as_text_list,
    item_text,
)
from engine.contract.environment import NodeEnvironment, database, node_environment
from engine.contract.http import (
    SENSITIVE_RESPONSE_HEADERS,
    HttpAuth,
    HttpClient,
    check_header_names,
    merge_headers,
    raise_for_status,
    response_output,
    secret_headers_of,
    send,
    send_streamed,
    send_with_secrets,
)
from engine.contract.jobs import JobFunction, JobType, Progress, get_job, job_available, register_job
from engine.contract.local_models import (
    DEFAULT_EMBEDDER,
    MODEL_NAME_PATTERN,
    Embeddings,
    Generation,
    LocalModels,
    ModelFolder,
    local_models,
    provide_local_models,
)
from engine.contract.node_type import (
    EXPIRED_BY,
    PORT_TYPES,
    EmptyConfig,
    JoinMode,
    NodeType,
    Port,
    Suspend,
    port_types_compatible,
)
from engine.contract.registry import (
    ENTRY_POINT_GROUP,
    all_node_types,
    failed_plugins,
    get_node_type,
    load_plugins,
    register,
)
from engine.contract.streaming import StreamRecorder
from engine.contract.tools import Tool, all_tools, get_tool, tool
from engine.errors import ConfigError, ErrorCode, FlowloomError, PolicyViolation, StepError
from engine.events import AGENT_COMPLETED, AGENT_FAILED, AGENT_STARTED, AGENT_STREAM, AGENT_TOOL_CALLED
from engine.json_schemas import SchemaRefused, check_schema, instance_problems
from engine.secrets import NAME_PATTERN as SECRET_NAME_PATTERN
from engine.secrets import REFERENCE_PATTERN as SECRET_REFERENCE_PATTERN

__all__ = [
    "AGENT_COMPLETED",
    "AGENT_FAILED",
    "AGENT_STARTED",
    "AGENT_STREAM",
    "AGENT_TOOL_CALLED",
    "DEFAULT_EMBEDDER",
    "ENTRY_POINT_GROUP",
    "EXPIRED_BY",
    "FIXED",
    "MEMORY_COLLECTION_PATTERN",
    "MODEL_NAME_PATTERN",
    "PORT_TYPES",
    "SECRET_FORMAT",
    "SECRET_NAME_PATTERN",
    "SECRET_REFERENCE_PATTERN",
    "SECRET_VALUES",
    "SENSITIVE_RESPONSE_HEADERS",
    "TEXT_KEYS",
    "ConfigError",
    "Document",
    "Embeddings",
    "EmptyConfig",
    "ErrorCode",
    "FlowloomError",
    "Generation",
    "HttpAuth",
    "HttpClient",
    "JobFunction",
    "JobType",
    "JoinMode",
    "LocalModels",
    "ModelFolder",
    "NodeEnvironment",
    "NodeType",
    "PolicyViolation",
    "Port",
    "Progress",
    "SchemaRefused",
    "StepContext",
    "StepError",
    "StreamRecorder",
    "Suspend",
    "Tool",
    "all_node_types",
    "all_tools",
    "as_documents",
    "as_text_list",
    "check_header_names",
    "check_schema",
    "database",
    "failed_plugins",
    "get_job",
    "get_node_type",
    "get_tool",
    "instance_problems",
    "item_text",
    "job_available",
    "load_plugins",
    "local_models",
    "merge_headers",
    "node_environment",
    "port_types_compatible",
    "provide_local_models",
    "raise_for_status",
    "register",
    "register_job",
    "response_output",
    "secret_headers_of",
    "send",
    "send_streamed",
    "send_with_secrets",
    "tool",
]
