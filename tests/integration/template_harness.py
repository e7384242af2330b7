"""Run a gallery template's example end to end: the world it runs against, and what it promised.

Everything a template reaches outside Flowloom is a loopback stand-in: its model calls go to the
scripted LLM server (tests/fixtures/scripted_llm.py), every `url` of a tool.http or webhook.send
node to `LoopbackService`, which answers with the example's scripted replies and records each
request. The workflow copy made by "use template" is edited like a person would (a new saved
version) to point at them; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets as token_source
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import text
from standardwebhooks import Webhook

from engine import secrets
from engine.approvals import Approver, decide
from engine.plan import build_plan
from engine.runs import RunView
from engine.settings import get_settings
from engine.template_files import Example, LLMReply, Template
from models.db import get_engine
from tests.fixtures.scripted_llm import ScriptedLLM, answer, tool_call
from tests.integration.engine_helpers import wait_for_step

SERVICE_PLACEHOLDER = "${service}"


class LoopbackService:
    """The outside service of an example: scripted replies in turn (the last one repeats)."""

    def __init__(self) -> None:
        self.replies: list[dict[str, Any]] = [{"status": 200, "body": {"ok": True}}]
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.port = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}"

    def script(self, replies: list[dict[str, Any]]) -> None:
        with self.lock:
            self.replies = list(replies) or [{"status": 200, "body": {"ok": True}}]
            self.received = []

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.received.append(request)
            return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


def _service_handler(service: LoopbackService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            request = {"method": self.command, "path": self.path, "raw": raw,
                       "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}  # fmt: skip
            reply = service.answer(request)
            payload = reply.get("body")
            if isinstance(payload, str):
                data, kind = payload.encode(), "text/html; charset=utf-8"
            else:
                data, kind = json.dumps(payload).encode(), "application/json"
            self.send_response(int(reply.get("status", 200)))
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815 - the http.server API

    return Handler


@contextmanager
def loopback_service() -> Iterator[LoopbackService]:
    """A LoopbackService on a free port of 127.0.0.1."""
    service = LoopbackService()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _service_handler(service))
    service.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="loopback-service", daemon=True)
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()


def _rehost(url: str, base: str) -> str:
    parts = urlsplit(url)
    return base + parts.path + (f"?{parts.query}" if parts.query else "")


def point_at_loopback(
    definition: dict[str, Any], llm: ScriptedLLM, service: LoopbackService
) -> dict[str, Any]:
    """The definition with every outside address on loopback, and the egress policy allowing it."""
    defn = copy.deepcopy(definition)
    for node in defn.get("nodes") or []:
        config = node.setdefault("config", {})
        if node["type"] == "agent" and config.get("provider", "openai") in ("openai", "anthropic"):
            config["base_url"] = llm.base_url
        url = config.get("url")
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            config["url"] = _rehost(url, service.base_url)
    egress = defn.setdefault("policy", {}).setdefault("egress", {})
    egress["allowed_hosts"] = [*egress.get("allowed_hosts", []), llm.host, service.host]
    return defn


def create_secrets(template: Template) -> dict[str, str]:
    """Every secret the template needs, bound to loopback; name -> value."""
    values: dict[str, str] = {}
    for need in template.meta.needs.secrets:
        value = "whsec_" + base64.b64encode(token_source.token_bytes(32)).decode()
        secrets.set_secret(need.name, value, allowed_destinations=["127.0.0.1"])
        values[need.name] = value
    return values


def _substitute(value: Any, service: LoopbackService) -> Any:
    if isinstance(value, str):
        return value.replace(SERVICE_PLACEHOLDER, service.base_url)
    if isinstance(value, dict):
        return {k: _substitute(v, service) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, service) for v in value]
    return value


def _reply(reply: LLMReply, index: int, service: LoopbackService) -> dict[str, Any]:
    if reply.answer is not None:
        return answer(reply.answer)
    if reply.tool_call is not None:
        arguments = _substitute(reply.tool_call.arguments, service)
        return tool_call(reply.tool_call.name, arguments, call_id=f"call_{index}")
    return {"id": "chatcmpl-broken", "error": {"message": "the model is overloaded"}}


def _prompt_text(request: dict[str, Any]) -> str:
    messages = (request.get("body") or {}).get("messages") or []
    return "\n".join(
        str(m.get("content") or "")
        for m in messages
        if isinstance(m, dict) and m.get("role") in ("system", "user")
    )


def script_llm(llm: ScriptedLLM, example: Example, service: LoopbackService) -> None:
    """The example's model replies: each answers the first request its `match` fits, in turn."""
    pending = list(enumerate(example.llm))
    lock = threading.Lock()

    def pick(request: dict[str, Any]) -> dict[str, Any]:
        prompt = _prompt_text(request)
        with lock:
            for position, (index, reply) in enumerate(pending):
                if reply.match is None or reply.match in prompt:
                    pending.pop(position)
                    return _reply(reply, index, service)
        return {"id": "chatcmpl-unscripted", "error": {"message": f"no scripted reply fits: {prompt[:200]}"}}

    llm.script(repeat=pick)


def _pending_approval(run_id: str, node_id: str, seen: set[str]) -> str:
    wait_for_step(run_id, node_id, "waiting", timeout=90)
    with get_engine(get_settings().database_url).connect() as conn:
        rows = conn.execute(
            text("SELECT id FROM approvals WHERE run_id = :r AND node_id = :n AND status = 'pending' "
                 "ORDER BY created_at"), {"r": run_id, "n": node_id},
        ).all()  # fmt: skip
    fresh = [str(r.id) for r in rows if str(r.id) not in seen]
    assert fresh, f"no new pending approval of {node_id} in run {run_id}"
    return fresh[0]


def make_decisions(run_id: str, example: Example) -> None:
    """Each decision of the example, by each of its voters, through engine.approvals."""
    seen: set[str] = set()
    for decision in example.decisions:
        approval_id = _pending_approval(run_id, decision.node, seen)
        seen.add(approval_id)
        for number, voter in enumerate(decision.voters, 1):
            person = Approver(
                user_id=voter.split("@")[0], email=voter, role=decision.role, email_verified=True
            )
            outcome = decide(approval_id, person, action=decision.action, form=decision.form,
                             comment=decision.comment)  # fmt: skip
            if number < len(decision.voters):
                assert outcome.status == "pending", (voter, outcome)


def _approvals(run_id: str) -> list[dict[str, Any]]:
    with get_engine(get_settings().database_url).connect() as conn:
        rows = conn.execute(
            text("SELECT node_id, status, request, EXTRACT(EPOCH FROM deadline - created_at) AS left_s "
                 "FROM approvals WHERE run_id = :r ORDER BY created_at"), {"r": run_id},
        ).all()  # fmt: skip
    return [{"node": r.node_id, "status": r.status, "quorum": (r.request or {}).get("quorum", 1),
             "deadline_s": round(float(r.left_s)) if r.left_s is not None else None} for r in rows]  # fmt: skip


def _signed_with(request: dict[str, Any], values: dict[str, str]) -> str | None:
    headers = request["headers"]
    if "webhook-signature" not in headers:
        return None
    for name, value in values.items():
        try:
            Webhook(value).verify(request["raw"], headers)
        except Exception:  # noqa: BLE001 - any failure means "not this key"
            continue
        return name
    return None


def received_view(service: LoopbackService, values: dict[str, str]) -> list[dict[str, Any]]:
    """The service's requests as checks see them: which secrets they carried, which signs them."""
    out = []
    for request in service.received:
        headers = " ".join(request["headers"].values())
        carried = sorted(name for name, value in values.items() if value in headers)
        view = {k: v for k, v in request.items() if k != "raw"}
        out.append({**view, "secrets": carried, "signed_with": _signed_with(request, values)})
    return out


def check_variables(template: Template, view: RunView, llm: ScriptedLLM, service: LoopbackService,
                    values: dict[str, str]) -> dict[str, Any]:  # fmt: skip
    """What an example's checks may look at (engine.template_files.Expect)."""
    ran = [s for s in view.steps if s["status"] != "skipped"]
    latest: dict[str, dict[str, Any]] = {}
    for step in ran:
        latest[step["node_id"]] = step
    return {
        "status": view.status,
        "inputs": view.inputs or {},
        "outputs": view.outputs or {},
        "error": view.error,
        "steps": {node: step.get("outputs") or {} for node, step in latest.items()},
        "visits": [s["node_id"] for s in ran],
        "attempts": {node: step.get("attempt") for node, step in latest.items()},
        "plan": build_plan(template.parsed).phases,
        "approvals": _approvals(view.id),
        "received": received_view(service, values),
        "llm_requests": [r["body"] for r in llm.requests],
    }
