"""The deployment files (Dockerfile, docker-compose.yml, the Helm chart) obey their rules and schemas.

No Docker engine or helm binary is available here (docs/deploy.md): the Dockerfile is parsed with
dockerfile-parse and checked rule by rule, docker-compose.yml is validated against the Compose
Specification's JSON schema (vendored in tests/schemas/), and the chart is rendered with
tests/helm_subset.py and every manifest validated against the Kubernetes JSON schemas that
kubernetes-validate ships (strict: unknown fields are errors).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from app.cli import COMMANDS_WITH_APP
from tests.helm_subset import TemplateError, render, render_chart

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "flowloom"
K8S_VERSION = "1.33.0"
PINNED = re.compile(r"^[a-z0-9./_-]+:v?\d+\.\d+(\.\d+)?[A-Za-z0-9._-]*(@sha256:[0-9a-f]{64})?$")


# Dockerfile


def stages() -> list[list[dict[str, Any]]]:
    """The Dockerfile's instructions, split at each FROM (comments dropped)."""
    parsed = DockerfileParser(path=str(REPO / "Dockerfile"))
    result: list[list[dict[str, Any]]] = []
    for item in parsed.structure:
        if item["instruction"] == "COMMENT":
            continue
        if item["instruction"] == "FROM":
            result.append([])
        assert result, "an instruction before the first FROM"
        result[-1].append(item)
    return result


def test_dockerfile_is_multi_stage_with_pinned_bases() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    names = []
    for stage in all_stages:
        image, _, name = stage[0]["value"].partition(" AS ")
        assert PINNED.match(image.strip()), f"base image not pinned to a version: {image}"
        assert ":latest" not in image
        names.append(name.strip())
    final = all_stages[-1]
    copies_from = [i["value"] for i in final if i["instruction"] == "COPY" and "--from=" in i["value"]]
    assert any(f"--from={names[0]}" in c for c in copies_from), (
        "the final stage copies nothing from the build"
    )
    build_runs = " ".join(i["value"] for i in all_stages[0] if i["instruction"] == "RUN")
    assert "reflex export --frontend-only" in build_runs and "--env prod" in build_runs


def test_dockerfile_runs_as_a_non_root_user_with_a_healthcheck() -> None:
    final = stages()[-1]
    instructions = [i["instruction"] for i in final]
    users = [i["value"].split(":")[0] for i in final if i["instruction"] == "USER"]
    assert users and users[-1] not in ("root", "0"), users
    assert instructions.index("USER") < instructions.index("ENTRYPOINT")
    healthcheck = next(i["value"] for i in final if i["instruction"] == "HEALTHCHECK")
    assert "/api/health/live" in healthcheck
    entrypoint = json.loads(next(i["value"] for i in final if i["instruction"] == "ENTRYPOINT"))
    cmd = json.loads(next(i["value"] for i in final if i["instruction"] == "CMD"))
    assert entrypoint == ["flowloom"] and cmd[0] in COMMANDS_WITH_APP


def test_dockerfile_adds_no_urls_and_bakes_in_no_secrets() -> None:
    for stage in stages():
        for item in stage:
            if item["instruction"] == "ADD":
                assert not re.search(r"https?://|git@", item["value"]), item["value"]
            if item["instruction"] in ("ENV", "ARG"):
                assert not re.search(r"(SECRET|PASSWORD|TOKEN)\w*=", item["value"]), item["value"]
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".web", ".env"} <= set(ignored)


# docker-compose.yml


def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_file_is_valid_by_the_compose_specification() -> None:
    schema = json.loads((REPO / "tests" / "schemas" / "compose-spec.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose()), key=str)
    assert errors == [], [e.message for e in errors]
    broken = compose()
    broken["services"]["web"]["depends_on"]["migrate"]["condition"] = "when_ready"
    assert not jsonschema.Draft7Validator(schema).is_valid(broken)  # the schema does catch mistakes


def test_compose_has_every_tier_and_migrates_once_before_them() -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "kafka", "migrate", "web", "worker", "scheduler"} <= set(services)
    assert "pgvector" in services["postgres"]["image"]
    assert services["migrate"]["command"] == ["migrate"] and services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "scheduler", "relay", "kafka-triggers"):
        service = services[name]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        assert service["command"][0] in COMMANDS_WITH_APP, name
        env = service["environment"]
        assert (
            env["FLOWLOOM_DATABASE_URL"].startswith("postgresql://")
            and "@postgres:" in env["FLOWLOOM_DATABASE_URL"]
        )
        assert env["FLOWLOOM_REDIS_URL"].startswith("redis://redis:")
        assert (
            "${FLOWLOOM_SECRET_KEY:?" in env["FLOWLOOM_SECRET_KEY"]
        )  # from the environment, never in the file
    assert services["worker"]["deploy"]["replicas"] >= 2
    for name, service in services.items():
        if "image" in service and "build" not in service:
            assert PINNED.match(service["image"]), f"{name}: image not pinned: {service['image']}"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes beyond loopback: {port}"


# Helm chart


def test_helm_subset_renders_trims_and_refuses_the_rest() -> None:
    scope = {"Values": {"on": True, "off": False, "n": 3, "s": "a b"}, "Release": {"Name": "r"}, "Chart": {}}
    assert render("x: {{ .Values.n }}\ny: {{ .Values.s | quote }}\n", scope) == 'x: 3\ny: "a b"\n'
    assert render("a\n{{- if .Values.on }}\nb\n{{- end }}\n", scope) == "a\nb\n"
    assert render("a\n{{- if .Values.off }}\nb\n{{- end }}\n", scope) == "a\n"
    assert render("a\n{{- if .Values.missing }}\nb\n{{- end }}\n", scope) == "a\n"
    for bad in ("{{ .Values.nope }}", "{{ toYaml .Values }}", '{{ include "x" . }}', "{{ if .Values.on }}"):
        with pytest.raises(TemplateError):
            render(bad, scope)


def by_kind(manifests: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}


@pytest.mark.parametrize("autoscaling", [False, True])
def test_helm_chart_renders_manifests_valid_by_the_kubernetes_schemas(autoscaling: bool) -> None:
    overrides = {"web": {"replicas": 3}, "worker": {"replicas": 5, "autoscaling": {"enabled": autoscaling}}}
    manifests = render_chart(CHART, overrides)
    for manifest in manifests:
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    kinds = by_kind(manifests)
    web, worker = kinds[("Deployment", "flowloom-web")], kinds[("Deployment", "flowloom-worker")]
    assert web["spec"]["replicas"] == 3 and worker["spec"]["replicas"] == 5  # scaled separately
    assert ("Deployment", "flowloom-scheduler") in kinds
    assert (("HorizontalPodAutoscaler", "flowloom-worker") in kinds) is autoscaling
    if autoscaling:
        metric = kinds[("HorizontalPodAutoscaler", "flowloom-worker")]["spec"]["metrics"][0]["external"]
        assert metric["metric"]["name"] == "flowloom_queue_depth"
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/api/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/health/ready"
    job = kinds[("Job", "flowloom-migrate")]
    assert "pre-upgrade" in job["metadata"]["annotations"]["helm.sh/hook"]
    for manifest in (web, worker, kinds[("Deployment", "flowloom-scheduler")], job):
        pod = manifest["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["args"][0] in COMMANDS_WITH_APP, container["args"]
        assert {"secretRef": {"name": "flowloom-secrets"}} in container["envFrom"]
        assert not any("SECRET" in e.get("name", "") for e in container.get("env", []))
    config = kinds[("ConfigMap", "flowloom-config")]["data"]
    assert config["FLOWLOOM_WEB_STATE"] == "redis" and config["REFLEX_API_URL"].startswith("https://")
    assert all(isinstance(v, str) for v in config.values())  # a ConfigMap holds strings only
    assert not any(re.search("SECRET|PASSWORD|DATABASE_URL|REDIS_URL", k) for k in config)


def test_kubernetes_schemas_do_catch_a_broken_manifest() -> None:
    manifests = render_chart(CHART, {"web": {"replicas": "two"}})
    web = by_kind(manifests)[("Deployment", "flowloom-web")]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, K8S_VERSION, strict=True)
    web = by_kind(render_chart(CHART))[("Deployment", "flowloom-web")]
    web["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}  # a typo'd field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, K8S_VERSION, strict=True)


def test_every_chart_template_parses_and_names_only_defined_values() -> None:
    # render_chart raises TemplateError on an undefined value, so this covers every template.
    names = [p.name for p in (CHART / "templates").glob("*.yaml")]
    assert len(names) >= 6
    assert len(render_chart(CHART)) == len(names) - 1  # all but the HPA, off by default
