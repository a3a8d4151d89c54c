"""`shiprail plan check` on bad plans: exit 2, every problem named with file, line and field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shiprail.plan import PlanError, load_plan, parse_plan
from shiprail.plan.loader import parse_train
from tests.helpers import run_cli

PLANS = Path(__file__).parent / "plans"
EXAMPLES = Path(__file__).parents[2] / "examples"


CASES = [
    ("unknown-depends-on.yaml", 9, "spec.services[0].depends_on[0]", "unknown service 'ledgr'"),
    ("cycle.yaml", 9, "spec.services[0].depends_on", "dependency cycle: payments → ledger → payments"),
    ("duplicate-service.yaml", 10, "spec.services[1].name", "duplicate service name 'payments'"),
    ("steps-not-increasing.yaml", 7, "spec.defaults.steps", "strictly increasing (50 then 25)"),
    ("steps-out-of-range.yaml", 10, "spec.services[0].steps", "step 0 is outside (0, 100]"),
    ("steps-not-ending-at-100.yaml", 7, "spec.defaults.steps", "the last step must be 100"),
    ("gate-not-defined.yaml", 7, "spec.defaults.gates[0]", "gate 'error-rate' is not defined"),
    ("unknown-gate-type.yaml", 7, "spec.gates.error-rate", "unknown gate type 'magic'"),
    (
        "unknown-template-variable.yaml",
        9,
        "spec.gates.error-rate.query",
        "unknown template variable {{verison}}",
    ),
    ("bad-duration.yaml", 7, "spec.defaults.bake", "bad duration '5 minutes'"),
    ("interval-longer-than-bake.yaml", 8, "spec.defaults.interval", "interval 2m is longer than bake 1m"),
    (
        "window-end-before-start.yaml",
        8,
        "spec.windows.allow[0]",
        "start and end are both 16:00: the window would be empty",
    ),
    ("unknown-timezone.yaml", 7, "spec.windows.timezone", "unknown time zone 'Europe/Berlinn'"),
    ("empty.yaml", 0, "", "the file is empty: expected a rollout plan"),
    ("wrong-kind.yaml", 2, "", "not a rollout plan"),
    ("yaml-syntax.yaml", 7, "", "YAML syntax error, column 3"),
    ("no-services.yaml", 6, "spec.services", "at least one service"),
    ("literal-secret.yaml", 12, "spec.services[0].actuator.headers.Authorization", "env:NAME or file:PATH"),
    ("unknown-field.yaml", 10, "spec.services[0].stepz", "unknown field 'stepz'; did you mean 'steps'?"),
]


@pytest.mark.parametrize(("name", "line", "field", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_bad_plan_exits_2_naming_file_line_and_field(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    line: int,
    field: str,
    fragment: str,
) -> None:
    path = PLANS / name
    code, out, err = run_cli(monkeypatch, capsys, "plan", "check", str(path))
    assert code == 2
    assert "Traceback" not in err + out
    location = f"{path}:{line}: " if line else f"{path}:"
    expected = f"{location}{field + ': ' if field else ''}"
    matching = [
        row for row in err.splitlines() if row.startswith("error: ") and expected in row and fragment in row
    ]
    assert matching, f"no line with {expected!r} and {fragment!r} in:\n{err}"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    plan = tmp_path / "many.yaml"
    plan.write_text(
        "apiVersion: shiprail/v1\nkind: RolloutPlan\nmetadata: {name: Bad_Name}\nspec:\n"
        "  defaults: {steps: [5, 1, 100], bake: 5x}\n"
        "  services:\n"
        "    - {name: a, version: '1', depends_on: [b, ghost], actuator: {type: http, url: 'http://x'}}\n"
        "    - {name: b, version: 2.4, depends_on: [a], actuator: {type: http, url: 'http://x'}}\n"
    )
    with pytest.raises(PlanError) as caught:
        load_plan(plan)
    fields = {issue.field for issue in caught.value.issues}
    assert {
        "metadata.name",
        "spec.defaults.steps",
        "spec.defaults.bake",
        "spec.services[1].version",
        "spec.services[0].depends_on[1]",
        "spec.services[0].depends_on",
    } <= fields
    cycle = [i for i in caught.value.issues if "cycle" in i.message]
    assert cycle and "a → b → a" in cycle[0].message


def test_yaml_number_version_is_refused_with_a_hint() -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(
            "apiVersion: shiprail/v1\nkind: RolloutPlan\nmetadata: {name: x}\nspec:\n  services:\n"
            "    - {name: a, version: 1.10, actuator: {type: http, url: 'http://x'}}\n"
        )
    assert "quote it" in str(caught.value)


def test_a_train_where_a_plan_is_expected_and_the_reverse_are_named_as_such() -> None:
    with pytest.raises(
        PlanError, match=r"this is a release train \(kind: ReleaseTrain\), not a rollout plan"
    ):
        parse_plan("apiVersion: shiprail/v1\nkind: ReleaseTrain\n")
    with pytest.raises(PlanError, match=r"this is a rollout plan \(kind: RolloutPlan\), not a release train"):
        parse_train("apiVersion: shiprail/v1\nkind: RolloutPlan\n")


def test_lockstep_wave_must_share_steps() -> None:
    with pytest.raises(PlanError, match="lockstep"):
        parse_plan(
            "apiVersion: shiprail/v1\nkind: RolloutPlan\nmetadata: {name: x}\nspec:\n  lockstep: true\n"
            "  services:\n"
            "    - {name: a, version: '1', actuator: {type: http, url: 'http://x'}}\n"
            "    - {name: b, version: '1', steps: [50, 100], actuator: {type: http, url: 'http://x'}}\n"
        )


def test_bad_plan_json_output(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(monkeypatch, capsys, "plan", "check", str(PLANS / "cycle.yaml"), "--json")
    assert code == 2
    data = json.loads(out)
    assert data["valid"] is False
    assert data["issues"][0]["line"] == 9 and "cycle" in data["issues"][0]["message"]


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], example: Path
) -> None:
    code, out, err = run_cli(monkeypatch, capsys, "plan", "check", str(example), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["valid"] is True
    assert data["waves"] if data.get("kind") != "ReleaseTrain" else data["train"]


def test_chain_example_schedule(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _code, out, _ = run_cli(monkeypatch, capsys, "plan", "check", str(EXAMPLES / "chain.yaml"), "--json")
    data = json.loads(out)
    assert data["waves"] == [["inventory"], ["payments"], ["checkout"]]
    # inventory 4 × 3m, payments 3 × 3m, checkout 4 × 5m
    assert data["shortest_duration"] == "41m"
    assert data["schedule"][0] == {
        "service": "inventory",
        "wave": 1,
        "step": 1,
        "weight": 1.0,
        "start": "0s",
        "bake": "3m",
    }


def test_human_output_lists_waves(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(monkeypatch, capsys, "plan", "check", str(EXAMPLES / "diamond-lockstep.yaml"))
    assert code == 0
    assert "wave 2: payments, inventory" in out
    assert "Shortest total duration: 18m + time waiting for approvals" in out


def test_schema_is_json_schema(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(monkeypatch, capsys, "plan", "schema")
    assert code == 0
    schema = json.loads(out)
    assert schema["$schema"].endswith("2020-12/schema")
    assert {"apiVersion", "kind", "metadata", "spec"} <= set(schema["properties"])
    assert "ThresholdGate" in schema["$defs"] and "BurnRateGate" in schema["$defs"]


def test_a_literal_credential_in_a_notification_header_is_refused() -> None:
    from tests.helpers import plan_document

    document = plan_document(
        "http://x/exposure",
        [{"name": "a"}],
        notify=[
            {"type": "webhook", "url": "http://hooks.local/x", "headers": {"Authorization": "Bearer abc"}}
        ],
    )
    import yaml

    with pytest.raises(
        PlanError, match=r"spec\.notify\[0\]\.headers\.Authorization: header 'Authorization' holds a literal"
    ):
        parse_plan(yaml.safe_dump(document))


def test_a_self_dependency_names_the_service() -> None:
    import yaml

    from tests.helpers import plan_document

    document = plan_document("http://x/exposure", [{"name": "ledger", "depends_on": ["ledger"]}])
    with pytest.raises(
        PlanError, match=r"spec\.services\[0\]\.depends_on\[0\]: service 'ledger' cannot depend on itself"
    ):
        parse_plan(yaml.safe_dump(document))


def test_gates_eval_at_takes_unix_seconds_as_prometheus_does() -> None:
    from datetime import UTC, datetime

    from shiprail.cli.gates import parse_at
    from shiprail.errors import BadInput

    assert parse_at("1733140800") == datetime(2024, 12, 2, 12, 0, tzinfo=UTC)
    assert parse_at("1733140800.5") == datetime(2024, 12, 2, 12, 0, 0, 500000, tzinfo=UTC)
    assert parse_at("2024-12-02T12:00:00Z") == datetime(2024, 12, 2, 12, 0, tzinfo=UTC)
    with pytest.raises(BadInput, match="Unix seconds"):
        parse_at("yesterday")


def _alias_bomb() -> str:
    """Thirty levels of doubling: 2^30 values from a few hundred bytes."""
    lines = ['a0: &a0 ["lol", "lol"]']
    lines += [f"a{n}: &a{n} [*a{n - 1}, *a{n - 1}]" for n in range(1, 30)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_alias_bomb(), "aliases expand this document past 100,000 values"),
        ("a: {<<: {b: 1}}\n", "merge keys (<<) are not accepted"),
        ("[" * 300 + "]" * 300, "nested more than 64 levels deep"),
        ("x: " + "y" * (600 * 1024), "at most 524,288 are read"),
    ],
    ids=["alias-bomb", "merge-key", "deep", "huge"],
)
def test_hostile_yaml_is_refused_quickly_with_a_message(text: str, message: str) -> None:
    import time

    started = time.monotonic()
    with pytest.raises(PlanError, match=re.escape(message)):
        parse_plan(text)
    assert time.monotonic() - started < 2


def test_a_plan_of_too_many_services_is_refused_by_a_limit_not_by_exhaustion() -> None:
    import time

    import yaml

    from tests.helpers import plan_document

    text = yaml.safe_dump(plan_document("http://x/exposure", [{"name": f"s{i}"} for i in range(1500)]))
    started = time.monotonic()
    with pytest.raises(PlanError, match="a plan holds at most 1,000 services \\(this one has 1,500\\)"):
        parse_plan(text)
    assert time.monotonic() - started < 5
    text = yaml.safe_dump(plan_document("http://x/exposure", [{"name": f"s{i}"} for i in range(1000)]))
    started = time.monotonic()
    assert len(parse_plan(text).spec.services) == 1000
    assert time.monotonic() - started < 5


def test_an_anchor_used_a_few_times_is_fine() -> None:
    import yaml

    from tests.helpers import plan_document

    actuator = {"type": "http", "url": "http://router/exposure"}
    document = plan_document(
        "unused", [{"name": "a", "actuator": actuator}, {"name": "b", "actuator": actuator}]
    )
    text = yaml.safe_dump(document)
    assert "&id001" in text and "*id001" in text  # PyYAML shares the repeated block
    assert [s.name for s in parse_plan(text).spec.services] == ["a", "b"]
