"""CI integration: the job summary, GitHub annotations, the Action's scripts, the GitLab job and the plain git hook.

Workflow commands are read back the way GitHub's runner reads them (:func:`runner_commands` follows
actions/runner's ``ActionCommand.TryParseV2``, its legacy ``##[...]`` form found anywhere in a line, and
``stop-commands``), not with archdiff's own code. The Action's ``run:`` scripts are taken from action.yml
(parsed as YAML), their ``${{ ... }}`` expressions rendered here, and run with bash as the runner runs
them, in a simulated GitHub environment: a shallow clone of a pull request with a model change, a
``GITHUB_STEP_SUMMARY`` file, ``GITHUB_ACTION_PATH`` at a clean copy of this repository and a fresh
virtual environment standing in for ``actions/setup-python`` (the one step not run).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import FIXTURES, ROOT, expected_for
from test_git import edited_keras, set_activation
from test_wheel import clean_env, copy_source, make_venv

from archdiff import ci
from archdiff.safetext import visible

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

FUNCTIONAL = FIXTURES / "keras3" / "functional.keras"
#: A layer name that tries every trick: a new line with a command, the legacy form mid-line, property separators.
EVIL = "aux\n::add-mask::weights-breaking ##[set-output name=ok]yes,title=x:y%0A"
#: What the runner knows (actions/runner registers these command extensions).
REGISTERED = {"error", "warning", "notice", "debug", "group", "endgroup", "add-mask", "set-output", "save-state",
              "echo", "set-env", "add-path", "add-matcher", "remove-matcher", "stop-commands"}


# -- GitHub's runner, as far as these tests need it ---------------------------------------------------------------
def _unescape(text: str, props: bool) -> str:
    pairs = [("%0D", "\r"), ("%0A", "\n")] + ([("%3A", ":"), ("%2C", ",")] if props else []) + [("%25", "%")]
    for code, ch in pairs:
        text = text.replace(code, ch)
    return text


def _parse_v2(line: str, registered: set[str]):
    line = line.lstrip()
    if not line.startswith("::"):
        return None
    end = line.find("::", 2)
    if end < 0:
        return None
    info = line[2:end]
    name, _, rest = info.partition(" ")
    if name.lower() not in registered:
        return None
    props = {}
    for prop in rest.strip().split(","):
        key, sep, value = prop.partition("=")
        if key and sep and value:
            props[key] = _unescape(value, True)
    return name.lower(), props, _unescape(line[end + 2:], False)


def _parse_legacy(line: str, registered: set[str]):
    start = line.find("##[")
    if start < 0:
        return None
    end = line.find("]", start)
    if end < 0:
        return None
    name, _, rest = line[start + 3:end].partition(" ")
    if name.lower() not in registered:
        return None
    props = dict(p.split("=", 1) for p in rest.split(";") if "=" in p)
    return name.lower(), props, line[end + 1:]


def runner_commands(output: str) -> list[tuple[str, dict, str]]:
    """The workflow commands GitHub's runner acts on in ``output``, in order (``stop-commands`` honoured)."""
    found: list[tuple[str, dict, str]] = []
    token = None
    for line in output.splitlines():
        registered = REGISTERED | ({token.lower()} if token else set())
        command = _parse_v2(line, registered) or _parse_legacy(line, registered)
        if command is None:
            continue
        if token is not None:
            if command[0] == token.lower():
                token = None
                found.append(("resume", {}, ""))
            continue
        if command[0] == "stop-commands":
            token = command[2]
        found.append(command)
    return found


# -- a repository with a committed model ----------------------------------------------------------------------------
def git_env(home: Path) -> dict[str, str]:
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.invalid", "NO_COLOR": "1"}


def git(cwd: Path, *args: str, env: dict | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if proc.returncode:
        raise AssertionError(f"git {args}: {proc.stderr}")
    return proc.stdout.strip()


def widen(name: str, units: int = 5):
    def edit(config):
        for entry in config["config"]["layers"]:
            if entry["config"].get("name") == name:
                entry["config"]["units"] = units
    return edit


def renamed(old: str, new: str, then=None):
    """Rename a layer everywhere in the config (its entry, the calls that use it, the model's outputs)."""
    def edit(config):
        text = json.dumps(config).replace(json.dumps(old), json.dumps(new))
        config.clear()
        config.update(json.loads(text))
        if then:
            then(config)
    return edit


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repository with model.keras committed, as the current directory (the in-process CLI runs there)."""
    home = tmp_path / "home"
    home.mkdir()
    root = tmp_path / "repo"
    root.mkdir()
    env = git_env(home)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    git(root, "init", "-q", "-b", "main")
    shutil.copy(FUNCTIONAL, root / "model.keras")
    git(root, "add", "model.keras")
    git(root, "commit", "-q", "-m", "model")
    monkeypatch.chdir(root)
    return root


# -- escaping ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["plain", "50%", "%3A is a colon", "a:b,c=d", "line\nbreak\r\n", "%0A%25", EVIL, ""])
def test_escaping_round_trips_through_the_runner(text):
    prop = ci.escape_property(text)
    assert not set(prop) & set("\r\n:,")
    assert _unescape(prop, True) == text
    data = ci.escape_data(text)
    assert not set(data) & set("\r\n")
    assert _unescape(data, False) == text


def test_a_name_cannot_add_properties_or_lines_to_an_annotation():
    line = ci.workflow_command("error", f"layer {EVIL}", file="models/a,b:c.keras", title=f"archdiff: {EVIL}")
    assert "\n" not in line and "\r" not in line
    ((name, props, message),) = runner_commands(line)
    assert name == "error"
    assert props == {"file": "models/a,b:c.keras", "title": f"archdiff: {EVIL}"}
    assert message == f"layer {EVIL}"


# -- the job summary --------------------------------------------------------------------------------------------------
def test_gate_appends_its_markdown_to_the_step_summary(repo, cli, monkeypatch):
    summary = repo.parent / "summary.md"
    earlier = "## an earlier step\n\nits own text\n"
    summary.write_text(earlier, encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    edited_keras(FUNCTIONAL, repo / "model.keras", widen("aux_output"))
    code, out, err = cli("gate", "model.keras")
    assert code == 1, err
    first = summary.read_text(encoding="utf-8")
    assert first.startswith(earlier)
    assert "## archdiff gate: ❌ failed (1 of 1 file)" in first
    assert "| `model.keras` | compared | interface-changing | ❌ fails |" in first
    assert "### ❌ archdiff: **interface-changing**" in first  # the per-file Markdown report
    assert "::" not in out  # no annotations unless asked

    edited_keras(FUNCTIONAL, repo / "model.keras", set_activation("branch_b", "relu"))
    code, out, err = cli("gate", "model.keras")
    assert code == 0, err
    second = summary.read_text(encoding="utf-8")
    assert second.startswith(first)  # appended, never rewritten
    assert "## archdiff gate: ✅ passed (1 file)" in second[len(first):]


def test_diff_appends_to_summary_file_in_one_write(repo, cli, monkeypatch):
    writes = []
    real_write = os.write

    target = repo.parent / "out" / "s.md"

    def spy(fd, data):
        # Only writes into the summary file: the reader's supervisor writes its child's job with os.write too.
        if os.readlink(f"/proc/self/fd/{fd}") == str(target):
            writes.append(bytes(data))
        return real_write(fd, data)

    target.parent.mkdir()
    edited_keras(FUNCTIONAL, repo / "new.keras", widen("main_output"))
    monkeypatch.setattr(ci.os, "write", spy)
    code, out, err = cli("diff", "model.keras", "new.keras", "--summary", target)
    assert code == 1, err
    text = target.read_bytes()
    assert writes == [text]
    assert text.decode().startswith("### ❌ archdiff: **interface-changing**")
    code, _, _ = cli("diff", "model.keras", "new.keras", "--summary", target, "--format", "json")
    assert target.read_bytes().count(b"### \xe2\x9d\x8c archdiff") == 2  # appended again, Markdown whatever --format


def test_no_summary_and_refused_summary_files(repo, cli, monkeypatch):
    summary = repo.parent / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    edited_keras(FUNCTIONAL, repo / "model.keras", widen("aux_output"))
    assert cli("gate", "--no-summary", "model.keras")[0] == 1
    assert not summary.exists()
    before = (repo / "model.keras").read_bytes()
    for target in (repo / "model.keras", FUNCTIONAL, repo / "notes.json", repo):
        code, out, err = cli("gate", "--summary", target, "model.keras")
        assert code == 2 and out == "", (target, out)
        assert err.count("\n") == 1 and err.startswith("archdiff: error: ") and "Traceback" not in err
    assert (repo / "model.keras").read_bytes() == before
    assert not (repo / "notes.json").exists()
    code, _, err = cli("gate", "--summary", repo / "no" / "such" / "dir.md", "model.keras")
    assert code == 2 and "does not exist" in err


def test_a_summary_past_githubs_limit_keeps_the_verdicts(repo, cli, monkeypatch):
    summary = repo.parent / "summary.md"
    room = 1000  # the verdicts fit, the per-file report (a few kB) does not
    summary.write_bytes(b"x" * (ci.SUMMARY_LIMIT - room - 1) + b"\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    edited_keras(FUNCTIONAL, repo / "model.keras", widen("aux_output"))
    assert cli("gate", "model.keras")[0] == 1
    added = summary.read_bytes()[ci.SUMMARY_LIMIT - room:].decode()
    assert summary.stat().st_size <= ci.SUMMARY_LIMIT
    assert "## archdiff gate: ❌ failed" in added and "| `model.keras` |" in added and "1 MiB" in added
    assert "### ❌ archdiff" not in added  # the full report did not fit
    summary.write_bytes(b"x" * (ci.SUMMARY_LIMIT - 10))
    assert cli("gate", "model.keras")[0] == 1
    assert summary.stat().st_size == ci.SUMMARY_LIMIT - 10  # nothing fits: nothing is written


# -- annotations ----------------------------------------------------------------------------------------------------
def test_gate_annotates_failing_and_changed_files(repo, cli):
    shutil.copy(FUNCTIONAL, repo / "same.keras")
    shutil.copy(FUNCTIONAL, repo / "soft.keras")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "more")
    edited_keras(FUNCTIONAL, repo / "model.keras", widen("aux_output"))
    edited_keras(FUNCTIONAL, repo / "soft.keras", set_activation("branch_b", "relu"))
    shutil.copy(FUNCTIONAL, repo / "new.keras")
    code, out, err = cli("gate", "--annotations", "github", "model.keras", "same.keras", "soft.keras", "new.keras")
    assert code == 1, err
    commands = runner_commands(out)
    assert [c[0] for c in commands] == ["stop-commands", "resume", "error", "warning"]
    (_, error_props, error_message), (_, warning_props, warning_message) = commands[2:]
    # The config says units 5 where the weights still hold 3: the output shape changes, the weights fit as stored.
    assert error_props == {"file": "model.keras", "title": "archdiff: interface-changing"}
    # Widening the output layer changes the number of classes: what the output means (issue 14's own kind).
    assert error_message.startswith("model.keras against HEAD: interface-changing (also weights-compatible, "
                                    "output-changing)")
    assert "fails the gate" in error_message and "Changed: aux_output (output-changing)" in error_message
    assert "1 input/output changes" in error_message
    assert warning_props == {"file": "soft.keras", "title": "archdiff: weights-compatible"}
    assert "passes" in warning_message
    # The report itself is between the fence, the annotations after it.
    lines = out.splitlines()
    assert lines[0].startswith("::stop-commands::archdiff-")
    assert "archdiff gate: failed (4 files" in out.split(lines[0], 1)[1].split("::error", 1)[0]


def test_a_crafted_layer_name_cannot_run_a_command_in_the_log(repo, cli):
    edited_keras(FUNCTIONAL, repo / "model.keras", renamed("aux_output", EVIL, then=widen(EVIL)))
    code, out, err = cli("gate", "--annotations", "github", "model.keras")
    assert code == 1, err
    commands = runner_commands(out)
    assert [c[0] for c in commands] == ["stop-commands", "resume", "error"]
    assert visible(EVIL) in commands[2][2]  # the name, made visible, in the message
    # Without the fence, the report's own lines would have run the crafted commands.
    token = out.splitlines()[0].split("::stop-commands::", 1)[1]
    unfenced = "\n".join(line for line in out.splitlines() if token not in line)
    assert {c[0] for c in runner_commands(unfenced)} & {"add-mask", "set-output"}


def test_annotation_message_counts_layers_and_parameters():
    from archdiff.diff import diff
    from archdiff.read import load

    a_path, b_path = FUNCTIONAL, FIXTURES / "keras3" / "nested.keras"
    d = diff(load(str(a_path)), load(str(b_path)))
    ((name, props, message),) = runner_commands(ci.annotation(str(b_path), d, None, d.exit_code))
    before, after = expected_for(a_path)["total_params"], expected_for(b_path)["total_params"]  # Keras' counts
    assert name == "error" and props["title"] == f"archdiff: {d.classification}"
    assert f"Parameters: {before:,} -> {after:,} (+{after - before:,})." in message
    added = [layer["path"] for layer in expected_for(b_path)["layers"]]
    assert f"Layers: {len(added)} added, {len(expected_for(a_path)['layers'])} removed" in message
    assert f"Added: {', '.join(added[:5])} and {len(added) - 5} more" in message
    assert ci.annotation(str(a_path), diff(load(str(a_path)), load(str(a_path))), None, 0) is None


def test_json_on_stdout_stays_json_and_annotations_go_to_stderr(repo, cli):
    edited_keras(FUNCTIONAL, repo / "new.keras", widen("main_output"))
    code, out, err = cli("diff", "model.keras", "new.keras", "--format", "json", "--annotations", "github")
    assert code == 1
    assert json.loads(out)["classification"] == "interface-changing"
    ((name, props, message),) = runner_commands(err)
    assert name == "error" and props["file"] == "new.keras" and message.startswith("new.keras: interface-changing")
    code, out, err = cli("diff", "model.keras", "model.keras", "--annotations", "github")
    assert code == 0 and [c[0] for c in runner_commands(out)] == ["stop-commands", "resume"]


def test_annotation_paths_are_relative_to_the_workspace(repo, cli, monkeypatch):
    (repo / "models").mkdir()
    git(repo, "mv", "model.keras", "models/net.keras")
    git(repo, "commit", "-q", "-m", "move")
    edited_keras(FUNCTIONAL, repo / "models" / "net.keras", widen("aux_output"))
    monkeypatch.setenv("GITHUB_WORKSPACE", str(repo))
    monkeypatch.chdir(repo / "models")
    code, out, err = cli("diff", "HEAD:models/net.keras", repo / "models" / "net.keras", "--annotations", "github",
                         "-o", repo / "report.txt")
    assert code == 1, err
    ((_, props, _),) = runner_commands(out)  # -o: nothing but the annotation on stdout, no fence needed
    assert props["file"] == "models/net.keras"


def test_an_unreadable_file_is_still_summarised_and_annotated(repo, cli, monkeypatch):
    summary = repo.parent / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    (repo / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    code, out, err = cli("gate", "--annotations", "github", "model.keras")
    assert code == 2 and err.startswith("archdiff: error: ")
    ((name, props, message),) = runner_commands(out)
    assert name == "error" and props == {"file": "model.keras", "title": "archdiff: cannot check this file"}
    text = summary.read_text(encoding="utf-8")
    assert "## archdiff gate: ❌ error" in text and "| `model.keras` | error |" in text


# -- the Action, run as the runner runs it ---------------------------------------------------------------------
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def test_action_inputs_reach_scripts_only_through_env():
    steps = ACTION["runs"]["steps"]
    assert ACTION["runs"]["using"] == "composite"
    assert set(ACTION["inputs"]) == {"paths", "against", "policy", "fail-on", "python-version"}
    for step in steps:
        if "run" in step:
            assert step["shell"] == "bash"
            assert not _EXPRESSION.search(step["run"]), f"an expression spliced into a script: {step['name']}"
    (setup,) = [s for s in steps if "uses" in s]
    assert setup["uses"].startswith("actions/setup-python@")
    assert setup["with"]["python-version"] == "${{ inputs.python-version }}"


def render(text: str, context: dict[str, str]) -> str:
    """``${{ expr }}`` replaced as the runner would; an expression the test does not know fails it."""
    return _EXPRESSION.sub(lambda m: context[m.group(1)], text)


class SimulatedRunner:
    """action.yml's steps run as GitHub runs a composite action's bash steps."""

    def __init__(self, tmp: Path, venv_bin: Path, action_path: Path, workspace: Path, event: dict[str, str]):
        self.tmp, self.venv_bin, self.action_path, self.workspace, self.event = tmp, venv_bin, action_path, \
            workspace, event
        self.summary = tmp / "step_summary.md"
        self.summary.write_text("# earlier steps\n", encoding="utf-8")

    def run(self, inputs: dict[str, str] | None = None, *, steps: tuple[str, ...] = ("Gate the changed model files",)):
        values = {name: spec.get("default", "") for name, spec in ACTION["inputs"].items()}
        values.update(inputs or {})
        context = {f"inputs.{k}": v for k, v in values.items()}
        context.update({"github.event.pull_request.base.sha": self.event.get("base", ""),
                        "github.event.before": self.event.get("before", ""),
                        "github.workspace": str(self.workspace), "github.action_path": str(self.action_path)})
        env = clean_env(**git_env(self.tmp / "home"))
        env.update({"PATH": f"{self.venv_bin}{os.pathsep}{env['PATH']}", "GITHUB_ACTIONS": "true", "CI": "true",
                    "GITHUB_WORKSPACE": str(self.workspace), "GITHUB_ACTION_PATH": str(self.action_path),
                    "GITHUB_STEP_SUMMARY": str(self.summary), "RUNNER_TEMP": str(self.tmp),
                    **{f"INPUT_{k.upper()}": v for k, v in values.items()}})
        results = []
        for step in ACTION["runs"]["steps"]:
            if "uses" in step or step["name"] not in steps:
                continue  # setup-python: the venv on PATH stands in for it
            script = self.tmp / "step.sh"
            script.write_text(render(step["run"], context), encoding="utf-8")
            step_env = {**env, **{k: render(str(v), context) for k, v in step.get("env", {}).items()}}
            proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                                  cwd=render(step.get("working-directory", str(self.workspace)), context),
                                  env=step_env, capture_output=True, text=True, timeout=600)
            results.append(proc)
        return results[-1]


@pytest.fixture(scope="module")
def action(tmp_path_factory):
    """A pull request's shallow checkout, the Action's copy of this repository, and its install step run."""
    tmp = tmp_path_factory.mktemp("action")
    (tmp / "home").mkdir()
    env = git_env(tmp / "home")
    upstream = tmp / "upstream"
    (upstream / "models").mkdir(parents=True)
    git(upstream, "init", "-q", "-b", "main", env=env)
    for name in ("net.keras", "aux.keras", "frozen.keras"):
        shutil.copy(FUNCTIONAL, upstream / "models" / name)
    (upstream / "README.md").write_text("models\n")
    git(upstream, "add", ".", env=env)
    git(upstream, "commit", "-q", "-m", "base", env=env)
    base = git(upstream, "rev-parse", "HEAD")
    git(upstream, "checkout", "-q", "-b", "pr", env=env)
    edited_keras(FUNCTIONAL, upstream / "models" / "net.keras", widen("aux_output"))
    edited_keras(FUNCTIONAL, upstream / "models" / "aux.keras", set_activation("branch_b", "relu"))
    (upstream / "README.md").write_text("models, changed\n")
    git(upstream, "commit", "-q", "-am", "pr", env=env)
    workspace = tmp / "workspace"
    # actions/checkout's default: one commit deep, so the base is not there until the Action fetches it.
    git(tmp, "clone", "-q", "--depth", "1", "--branch", "pr", upstream.as_uri(), str(workspace), env=env)
    action_path = copy_source(tmp / "action-checkout")
    venv_bin = make_venv(tmp / "python")
    runner = SimulatedRunner(tmp, venv_bin, action_path, workspace, {"base": base})
    install = runner.run(steps=("Install archdiff",))
    assert install.returncode == 0, install.stdout + install.stderr
    return runner


@pytest.mark.slow
def test_action_installs_archdiff_from_its_own_checkout(action):
    proc = subprocess.run([action.venv_bin / "python", "-c", "import archdiff; print(archdiff.__file__)"],
                          env=clean_env(), capture_output=True, text=True, cwd=action.tmp)
    where = Path(proc.stdout.strip()).resolve()
    assert where.is_relative_to((action.tmp / "python").resolve()), where


@pytest.mark.slow
def test_action_gates_a_pull_request(action):
    with pytest.raises(subprocess.CalledProcessError):  # the base commit is not in the shallow checkout yet
        subprocess.run(["git", "cat-file", "-e", action.event["base"]], cwd=action.workspace, check=True,
                       capture_output=True)
    before = action.summary.read_text(encoding="utf-8")
    proc = action.run()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "2 changed model file(s)" in proc.stdout
    commands = runner_commands(proc.stdout)
    # One annotation per changed file, in git's order (aux.keras, net.keras), after the fenced report.
    assert [c[0] for c in commands] == ["stop-commands", "resume", "warning", "error"]
    assert commands[2][1] == {"file": "models/aux.keras", "title": "archdiff: weights-compatible"}
    assert commands[3][1] == {"file": "models/net.keras", "title": "archdiff: interface-changing"}
    summary = action.summary.read_text(encoding="utf-8")
    assert summary.startswith(before)
    added = summary[len(before):]
    assert "## archdiff gate: ❌ failed (1 of 2 files)" in added
    assert f"Model files against `{action.event['base']}`" in added
    assert "README" not in added and "frozen.keras" not in added


@pytest.mark.slow
def test_action_inputs_choose_files_rules_and_revision(action):
    # fail-on: only a topology change fails; the widened output no longer does.
    proc = action.run({"fail-on": "topology-changing"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [c[0] for c in runner_commands(proc.stdout)] == ["stop-commands", "resume", "warning", "warning"]
    # paths: only the file asked for.
    proc = action.run({"paths": "models/aux.keras"})
    assert proc.returncode == 0 and "1 changed model file(s)" in proc.stdout, proc.stderr
    # policy: a policy file from the workspace freezes branch_b, which aux.keras changed.
    (action.workspace / "ci").mkdir(exist_ok=True)
    (action.workspace / "ci" / "policy.yaml").write_text("frozen: [branch_b]\n")
    proc = action.run({"policy": "ci/policy.yaml", "paths": "models/aux.keras"})
    assert proc.returncode == 1 and "FAIL frozen" in proc.stdout
    commands = runner_commands(proc.stdout)
    assert [c[0] for c in commands] == ["stop-commands", "resume", "error"]
    assert commands[2][1] == {"file": "models/aux.keras", "title": "archdiff: weights-compatible, policy failed"}
    assert "Policy rule frozen failed" in commands[2][2]
    # against: an explicit revision; the same commit as HEAD means nothing changed.
    proc = action.run({"against": "HEAD"})
    assert proc.returncode == 0 and "0 changed model file(s)" in proc.stdout
    assert "No model files given; nothing to check." in action.summary.read_text(encoding="utf-8")
    # a revision that cannot be found: one error, exit 2.
    proc = action.run({"against": "0" * 39 + "1"})
    assert proc.returncode == 2
    assert [c[0] for c in runner_commands(proc.stdout)] == ["error"]


# -- the other CI examples in docs/ci.md ----------------------------------------------------------------------------
def doc_block(marker: str) -> str:
    """The fenced block right after the HTML comment naming ``marker`` in docs/ci.md."""
    text = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
    after = text.split(f"<!-- tests/test_ci_integration.py {marker}", 1)[1]
    return after.split("```", 2)[1].split("\n", 1)[1]


@pytest.fixture
def archdiff_on_path(tmp_path):
    """``archdiff`` on PATH running this checkout (the docs' examples call the console script)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "archdiff"
    shim.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m archdiff \"$@\"\n")
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_gitlab_job_fails_the_merge_request_and_keeps_the_report(repo, archdiff_on_path):
    job = yaml.safe_load(doc_block("runs this job's script"))["archdiff-gate"]
    assert job["artifacts"]["paths"] == ["archdiff-report.md"] and job["variables"]["GIT_DEPTH"] == "0"
    script = "\n".join(line for line in job["script"] if not line.startswith("pip install"))
    base = git(repo, "rev-parse", "HEAD")
    edited_keras(FUNCTIONAL, repo / "model.keras", widen("aux_output"))
    git(repo, "commit", "-q", "-am", "widen")
    env = {**os.environ, **archdiff_on_path, "CI_MERGE_REQUEST_DIFF_BASE_SHA": base, "GITLAB_CI": "true"}
    env.pop("GITHUB_STEP_SUMMARY", None)
    proc = subprocess.run(["bash", "-e", "-c", script], cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = (repo / "archdiff-report.md").read_text(encoding="utf-8")
    assert "## archdiff gate: ❌ failed" in report and "`model.keras`" in report


def test_plain_pre_commit_hook_refuses_a_breaking_commit(repo, archdiff_on_path):
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text(doc_block("installs this hook"))
    hook.chmod(0o755)
    env = {**archdiff_on_path}
    edited_keras(FUNCTIONAL, repo / "model.keras", widen("aux_output"))
    git(repo, "add", "model.keras")
    proc = subprocess.run(["git", "commit", "-q", "-m", "widen"], cwd=repo, env={**os.environ, **env},
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "interface-changing" in proc.stdout + proc.stderr
    assert git(repo, "rev-list", "--count", "HEAD") == "1"
    edited_keras(FUNCTIONAL, repo / "model.keras", set_activation("branch_b", "relu"))
    git(repo, "add", "model.keras")
    (repo / "notes.txt").write_text("no model here\n")
    git(repo, "add", "notes.txt")
    git(repo, "commit", "-q", "-m", "activation", env=env)
    assert git(repo, "rev-list", "--count", "HEAD") == "2"


def test_readme_first_screen_shows_the_gate_in_ci_in_under_ten_lines():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[2].startswith("    make demo ") and lines[3].startswith("    make test ")  # still first
    rest = lines[5:]
    block = rest[: rest.index("", rest.index("    # .github/workflows/models.yml: fail a pull request that breaks "
                                              "a model"))]
    assert len([line for line in block if line.strip()]) < 10  # the sentence and the workflow
    workflow = yaml.safe_load("\n".join(line[4:] for line in block if line.startswith("    ")))
    steps = workflow["jobs"]["gate"]["steps"]
    assert workflow[True] == "pull_request"  # YAML 1.1 reads the key `on` as true
    assert steps[0]["uses"].startswith("actions/checkout@") and "/archdiff@" in steps[1]["uses"]
