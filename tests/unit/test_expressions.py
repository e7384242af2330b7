"""The Jinja2 sandbox: rendering, native values, filters, escapes and resource caps."""

from __future__ import annotations

import time

import pytest

from engine import expression_limits, expressions
from engine.errors import PolicyViolation, StepError
from engine.expressions import (
    check_expression,
    check_template,
    evaluate,
    is_templated,
    render_template,
    render_value,
)

VARIABLES = {
    "input": {"name": "Ada", "count": 3, "tags": ["a", "b"]},
    "steps": {"fetch": {"output": {"items": [{"id": 1, "ok": True}, {"id": 2, "ok": False}], "keys": "k"}}},
    "d": {"a": 1},
    "l": [1, 2],
    "x": "hi",
}


def test_renders_variables_loops_and_conditions() -> None:
    template = "Hi {{ input.name }}: {% for t in input.tags %}{{ loop.index }}={{ t }}{% if not loop.last %}, {% endif %}{% endfor %}"
    assert render_template(template, VARIABLES) == "Hi Ada: 1=a, 2=b"


def test_missing_names_render_as_empty_text_and_evaluate_to_none() -> None:
    assert render_template("[{{ steps.nope.output.x }}]", VARIABLES) == "[]"
    assert evaluate("steps.nope.output.x", VARIABLES) is None
    assert evaluate("missing", VARIABLES) is None


def test_data_keys_win_over_dict_methods() -> None:
    assert evaluate("steps.fetch.output.items[0].id", VARIABLES) == 1
    assert render_template("{{ steps.fetch.output.keys }}", VARIABLES) == "k"


def test_evaluate_returns_native_values() -> None:
    assert evaluate("input.count + 1", VARIABLES) == 4
    assert evaluate("{'n': input.name, 'tags': input.tags}", VARIABLES) == {"n": "Ada", "tags": ["a", "b"]}
    assert evaluate("steps.fetch.output['items']|selectattr('ok')|map(attribute='id')", VARIABLES) == [1]


def test_render_value_keeps_the_native_type_of_a_lone_expression() -> None:
    value = {
        "items": "{{ steps.fetch.output['items'] }}",
        "count": "  {{- input.count -}}  ",
        "text": ["{{ input.count }} tags", "plain {not a template}", 7],
        "two": "{{ x }}{{ x }}",
        "brace": "{{ '}}' }}",
    }
    assert render_value(value, VARIABLES) == {
        "items": [{"id": 1, "ok": True}, {"id": 2, "ok": False}],
        "count": 3,
        "text": ["3 tags", "plain {not a template}", 7],
        "two": "hihi",
        "brace": "}}",
    }


def test_render_value_returns_untemplated_strings_untouched() -> None:
    text = "no markup {# here #} at all"
    assert render_value(text, VARIABLES) is text
    assert not is_templated(text)
    assert is_templated("{{ x }}") and is_templated("{% if x %}{% endif %}")


def test_tojson_and_fromjson_filters() -> None:
    assert render_template("{{ input.tags|tojson }}", VARIABLES) == '["a", "b"]'
    assert render_template("{{ missing|tojson }}", VARIABLES) == "null"
    assert evaluate("'{\"a\": [1, 2]}'|fromjson", VARIABLES) == {"a": [1, 2]}
    assert render_template("{{ l|join(', ') }} {{ x|upper }} {{ [[1], [2]]|sum(start=[]) }}", VARIABLES) == (
        "1, 2 HI [1, 2]"
    )


def test_fromjson_refuses_oversized_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expressions, "MAX_JSON_CHARS", 10)
    with pytest.raises(PolicyViolation, match="fromjson"):
        evaluate("'[1, 2, 3, 4, 5, 6]'|fromjson", VARIABLES)


@pytest.mark.parametrize(
    "template",
    [
        "{{ ().__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__.os }}",
        "{{ self._TemplateReference__context }}",
        "{{ x.__globals__ }}",
        "{{ cycler.mro() }}",
        "{{ x.func_globals }}",
        "{{ x['__class__'] }}",
        "{{ x|attr('__class__') }}",
        "{{ l|map(attribute='__class__')|list }}",
        '{{ "{0.__class__}".format(x) }}',
        '{{ "{a.__class__.__mro__}".format_map({"a": x}) }}',
        "{{ d.update({'a': 2}) }}",
        "{{ l.append(3) }}",
        "{{ d.pop('a') }}",
        "{{ (l|map('string')).gi_frame }}",
    ],
)
def test_sandbox_escapes_are_policy_violations(template: str) -> None:
    with pytest.raises(PolicyViolation, match="unsafe"):
        render_template(template, VARIABLES)


def test_immutable_sandbox_leaves_data_unchanged() -> None:
    data = {"d": {"a": 1}, "l": [1]}
    for source in ("d.update({'a': 2})", "l.append(2)", "d.clear()"):
        with pytest.raises(PolicyViolation):
            evaluate(source, data)
    assert data == {"d": {"a": 1}, "l": [1]}


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'a' * 10**7 }}",
        "{{ [0] * 10**7 }}",
        "{{ 2 ** 1000000 }}",
        "{% for i in range(10**9) %}{% endfor %}",
        "{{ range(10**30)|list }}",
        "{{ 'a'.center(10**8) }}",
        "{{ 'x'|center(10**8) }}",
        "{{ '%0999999999d' % 1 }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '{0:{1}}'.format(1, 99) }}",
        "{% set s = 'a' * 999999 %}{{ s.replace('', s) }}",
        "{% set s = 'a' * 999999 %}{{ s ~ s }}",
        "{% set s = 'a' * 999999 %}{{ s + s }}",
        "{% set s = 'a' * 999999 %}{{ [s, s, s] }}",
        "{% set s = 'a' * 999999 %}{{ [s, s, s]|join }}",
        "{% set s = 'a' * 999999 %}{{ (s, s)|string }}",
        "{% set s = 'a' * 999999 %}{% macro m() %}{{ s }}{{ s }}{% endmacro %}{{ m() }}",
        "{{ range(100000)|map('string')|join('x' * 1000) }}",
        "{{ 'x'|wordwrap(1, wrapstring='y' * 999999) }}",
    ],
)
def test_size_caps_refuse_before_building(template: str) -> None:
    started = time.monotonic()
    with pytest.raises(PolicyViolation):
        render_template(template, VARIABLES)
    assert time.monotonic() - started < 3  # refused up front, not after building the value


def test_rendered_output_is_capped_while_streaming(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expression_limits, "MAX_OUTPUT_CHARS", 1_000)
    with pytest.raises(PolicyViolation, match="template output"):
        render_template("{% for i in range(100000) %}0123456789{% endfor %}", VARIABLES)


def test_source_length_is_capped() -> None:
    with pytest.raises(PolicyViolation, match="limit is 20,000"):
        render_template("x" * 20_001, VARIABLES)
    assert "limit" in (check_expression("1 + " * 6_000 + "1") or "")


@pytest.mark.parametrize(
    "template",
    [
        "{% set r = range(100000) %}{% for a in r %}{% for b in r %}{% endfor %}{% endfor %}",
        "{% for a in range(100000) %}{% for b in range(100000) %}{{ '' }}{% endfor %}{% endfor %}",
    ],
)
def test_long_running_templates_are_stopped_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch, template: str
) -> None:
    monkeypatch.setattr(expression_limits, "MAX_SECONDS", 0.2)
    started = time.monotonic()
    with pytest.raises(PolicyViolation, match="longer than 0.2s"):
        render_template(template, VARIABLES)
    assert time.monotonic() - started < 2


def test_total_work_of_one_render_is_capped() -> None:
    template = (
        "{% set d = dict.fromkeys(range(100000), 'a' * 999999) %}{{ d.values()|map('list')|list|length }}"
    )
    with pytest.raises(PolicyViolation, match="produced more than"):
        render_template(template, VARIABLES)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 1 / 0 }}", "ZeroDivisionError: division by zero"),
        ("{{ x.nomethod() }}", "has no attribute 'nomethod'"),
        ("line one\n{{ 1 // 0 }}", "on line 2"),
        ("{{ missing + 1 }}", "UndefinedError"),
    ],
)
def test_runtime_errors_are_non_retryable_step_errors(template: str, message: str) -> None:
    with pytest.raises(StepError, match=message) as caught:
        render_template(template, VARIABLES)
    assert caught.value.retryable is False


def test_syntax_errors_are_step_errors_with_line() -> None:
    with pytest.raises(StepError, match="syntax error on line 2") as caught:
        render_template("ok\n{% if %}", VARIABLES)
    assert caught.value.retryable is False
    with pytest.raises(StepError, match="expression syntax error"):
        evaluate("(", VARIABLES)


def test_check_functions_compile_without_running() -> None:
    assert check_template("Hi {{ input.name|upper }}{% for i in range(10**9) %}{% endfor %}") is None
    assert check_expression("1 / 0") is None
    assert "line 1" in (check_template("{% for %}") or "")
    assert "No filter named 'nope'" in (check_template("{{ x|nope }}") or "")
    assert "syntax error" in (check_expression("a +") or "")
