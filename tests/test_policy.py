"""The YAML policy gate: loading it safely, each rule, and what the report says."""
from __future__ import annotations

import copy
import json

import pytest
from test_diff_support import arch, mlp, save

from archdiff.diff import diff
from archdiff.diff.policy import LayerPattern, ParamGrowth, PolicyError, check, load_policy, parse_policy


@pytest.fixture
def changed(tmp_path):
    """stem widened, one layer added (extra), head unchanged in config."""
    a = mlp([8, 8, 2], names=["stem", "mid", "head"])
    b = mlp([8, 8, 8, 2], names=["stem", "mid", "extra", "head"])
    b["config"]["layers"][1]["config"]["activation"] = "tanh"
    return diff(arch(a, tmp_path, "a.json"), arch(b, tmp_path, "b.json"))


def rules(result) -> dict:
    return {r.rule: r for r in result.rules}


def test_parse_full_policy():
    policy = parse_policy({"version": 1, "frozen": ["conv1_conv", "conv2_*", {"re": "bn\\d+"}, "re:head_.*"],
                           "allow_added": ["extra*"], "allow_removed": False, "max_param_growth": "10%",
                           "fail_on": ["weights-breaking"]})
    assert [p.kind for p in policy.frozen] == ["name", "glob", "regex", "regex"]
    assert policy.allow_added == (LayerPattern("extra*", "glob"),)
    assert policy.allow_removed is False
    assert policy.max_param_growth == ParamGrowth(10.0, True)
    assert parse_policy({"max_param_growth": 1_000_000}).max_param_growth == ParamGrowth(1e6, False)
    assert parse_policy({"max_param_growth": "1,500"}).max_param_growth == ParamGrowth(1500.0, False)
    assert parse_policy(None).frozen == ()


@pytest.mark.parametrize("document, message", [
    ({"frozen": [3]}, "not a layer name"),
    ({"frozen": ["re:("]}, "not a valid regular expression"),
    ({"frozen_layers": []}, "unknown key 'frozen_layers'"),
    ({"max_param_growth": "a lot"}, "max_param_growth"),
    ({"max_param_growth": -1}, "negative"),
    ({"fail_on": ["breaking"]}, "not a kind"),
    ({"version": 2}, "version 2"),
    (["frozen"], "mapping"),
])
def test_bad_policies_are_refused_with_a_reason(document, message):
    with pytest.raises(PolicyError, match=message):
        parse_policy(document, source="p.yaml")


def test_load_policy_uses_the_safe_loader(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("frozen: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(Exception) as info:
        load_policy(str(evil))
    assert "will not construct" in str(info.value)
    with pytest.raises(PolicyError, match="no such policy file"):
        load_policy(str(tmp_path / "missing.yaml"))


def test_frozen_rule_names_the_layer_and_the_change(changed):
    result = check(changed, parse_policy({"frozen": ["stem", "head"]}))
    rule = rules(result)["frozen"]
    assert not result.passed and not rule.passed
    assert rule.violations == ("'stem' (frozen by 'stem') changed: activation: relu -> tanh",
                               "'head' (frozen by 'head') changed: inputs: mid -> extra")


def test_frozen_by_regex_and_glob(changed):
    assert not check(changed, parse_policy({"frozen": ["re:st.m"]})).passed
    assert not check(changed, parse_policy({"frozen": ["s*"]})).passed
    assert check(changed, parse_policy({"frozen": ["mid"]})).passed
    # A pattern that matches no layer protects nothing: it fails, named (it used to be a note and a pass).
    typo = check(changed, parse_policy({"frozen": ["mid", "re:nothing_.*"]}))
    assert not typo.passed
    assert rules(typo)["frozen"].violations == ("frozen pattern 're:nothing_.*' matches no layer of A or B",)


def test_frozen_layer_removed_or_renamed_fails(tmp_path):
    a = mlp([8, 8, 2], names=["stem", "mid", "head"])
    renamed = mlp([8, 8, 2], names=["stem", "middle", "head"])
    d = diff(arch(a, tmp_path, "a.json"), arch(renamed, tmp_path, "b.json"))
    result = check(d, parse_policy({"frozen": ["mid"]}))
    assert not result.passed and "renamed 'mid' -> 'middle'" in result.rules[0].violations[0]
    d = diff(arch(a, tmp_path, "a.json"), arch(mlp([8, 2], names=["stem", "head"]), tmp_path, "c.json"))
    result = check(d, parse_policy({"frozen": ["mid"], "allow_removed": True}))
    assert result.rules[0].violations == ("'mid' (frozen by 'mid') was removed",)


def test_allow_added_and_removed(changed):
    assert rules(check(changed, parse_policy({"allow_added": False})))["allow_added"].violations == (
        "'extra' (Dense) was added",)
    assert check(changed, parse_policy({"allow_added": ["ext*"]})).passed
    assert not check(changed, parse_policy({"allow_added": ["head_*"]})).passed
    assert check(changed, parse_policy({"allow_removed": False})).passed


def test_max_param_growth(changed):
    assert changed.params_delta == 72
    assert check(changed, parse_policy({"max_param_growth": 72})).passed
    result = check(changed, parse_policy({"max_param_growth": 71}))
    assert not result.passed
    assert "parameters grew by +72" in result.rules[0].message and "over the limit of 71" in result.rules[0].message
    pct = 100 * 72 / changed.a.total_params
    assert check(changed, parse_policy({"max_param_growth": f"{pct + 0.01:.2f}%"})).passed
    assert not check(changed, parse_policy({"max_param_growth": f"{pct - 0.01:.2f}%"})).passed


def test_param_growth_unknown_fails_with_a_reason(changed):
    from dataclasses import replace

    unknown = replace(changed, a=replace(changed.a, total_params=None))
    result = check(unknown, parse_policy({"max_param_growth": "10%"}))
    assert not result.passed and "unknown" in result.rules[0].message


def test_policy_fail_on(changed):
    result = check(changed, parse_policy({"fail_on": ["topology-changing"]}))
    assert not result.passed and "'extra' (Dense) added" in result.rules[0].violations
    assert check(changed, parse_policy({"fail_on": ["weights-breaking"]})).passed


def test_cli_policy_decides_the_exit_code(tmp_path, cli):
    a = save(mlp([8, 2], names=["stem", "head"]), tmp_path / "a.json")
    other = mlp([8, 2], names=["stem", "head"])
    other["config"]["layers"][2]["config"]["activation"] = "tanh"
    b = save(other, tmp_path / "b.json")
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text("frozen: [stem]\n")
    strict = tmp_path / "strict.yaml"
    strict.write_text("frozen: [head]\n")
    code, out, _ = cli("diff", a, b, "--policy", lenient)
    assert code == 0 and "policy   " in out and "passed" in out
    code, out, _ = cli("diff", a, b, "--policy", strict)
    assert code == 1 and "FAIL frozen" in out and "'head' (frozen by 'head') changed: activation: relu -> tanh" in out
    # --fail-on given as well adds its own condition.
    assert cli("diff", a, b, "--policy", lenient, "--fail-on", "weights-compatible")[0] == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("frozen: {a: 1, b: 2}\n")
    code, _, err = cli("diff", a, b, "--policy", bad)
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_policy_result_to_dict_is_json(changed):
    result = check(changed, parse_policy({"frozen": ["stem"], "allow_added": False, "max_param_growth": "1%"}))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["passed"] is False and [r["rule"] for r in data["rules"]] == ["frozen", "allow_added",
                                                                             "max_param_growth"]


def test_long_violation_lists_are_counted(tmp_path):
    a = mlp([2], names=["head"])
    b = mlp([4] * 30 + [2], names=[f"new{i}" for i in range(30)] + ["head"])
    d = diff(arch(a, tmp_path, "a.json"), arch(copy.deepcopy(b), tmp_path, "b.json"))
    rule = check(d, parse_policy({"allow_added": False})).rules[0]
    assert len(rule.violations) == 21 and rule.violations[-1] == "... and 10 more"
