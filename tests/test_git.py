"""Git integration with real git: textconv, git-config, .gitattributes, the gate and the pre-commit hook."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml
from support import FIXTURES, ROOT, run_cli

pytestmark = [pytest.mark.git,
              pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")]


@pytest.fixture
def repo(tmp_path):
    """An empty git repository with its own HOME, so no user or global config leaks in or out."""
    home = tmp_path / "home"
    home.mkdir()
    root = tmp_path / "repo"
    root.mkdir()
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "NO_COLOR": "1"}

    def git(*args, check=True):
        proc = subprocess.run(["git", *args], cwd=root, env={**os.environ, **env}, capture_output=True, text=True)
        if check and proc.returncode:
            raise AssertionError(proc.stderr)
        return proc

    def archdiff(*args):
        return run_cli(*args, cwd=root, env=env)

    git("init", "-q", "-b", "main")
    return root, git, archdiff, env


def edited_keras(src: Path, dst: Path, edit) -> Path:
    """A copy of a .keras zip with its config.json changed by ``edit(config)``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            zout.writestr(info, data)
    return dst


def set_activation(name: str, value: str):
    def edit(config):
        for entry in config["config"]["layers"]:
            if entry["config"].get("name") == name:
                entry["config"]["activation"] = value
    return edit


# -- textconv -----------------------------------------------------------------------
def test_textconv_is_stable_and_free_of_paths(tmp_path):
    copy = tmp_path / "elsewhere.keras"
    shutil.copy(FIXTURES / "keras3" / "resnet_small.keras", copy)
    one = run_cli("textconv", FIXTURES / "keras3" / "resnet_small.keras")
    two = run_cli("textconv", copy)
    assert one.returncode == 0 and one.stdout == two.stdout
    assert "elsewhere" not in two.stdout and "fixtures" not in one.stdout
    assert "layer conv2_block1_1_conv (Conv2D)" in one.stdout
    assert "shared_object_id" not in one.stdout and "registered_name" not in one.stdout


def test_textconv_of_keras2_and_keras3_configs_agree():
    a = run_cli("textconv", FIXTURES / "keras2" / "functional.json").stdout
    b = run_cli("textconv", FIXTURES / "keras3" / "functional.json").stdout
    assert a == b


def test_textconv_falls_back_for_files_that_are_not_models(tmp_path):
    text = tmp_path / "data.json"
    text.write_text('{"not": "a model"}\n')
    proc = run_cli("textconv", text)
    assert proc.returncode == 0 and proc.stdout == '{"not": "a model"}\n'
    blob = tmp_path / "junk.h5"
    blob.write_bytes(b"\x00\x01binary")
    proc = run_cli("textconv", blob)
    assert proc.returncode == 0 and "sha256" in proc.stdout
    proc = run_cli("textconv", "--no-fallback", blob)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


# -- git-config --------------------------------------------------------------------------
def test_git_config_sets_the_driver_and_prints_attributes(repo):
    root, git, archdiff, _ = repo
    proc = archdiff("git-config")
    assert proc.returncode == 0, proc.stderr
    assert "*.keras diff=archdiff" in proc.stdout and "*.h5 diff=archdiff" in proc.stdout
    assert "textconv" in git("config", "--local", "diff.archdiff.textconv").stdout
    assert not (root / ".gitattributes").exists()


def test_git_config_write_attributes_is_idempotent(repo):
    root, git, archdiff, _ = repo
    (root / ".gitattributes").write_text("*.png binary")
    assert archdiff("git-config", "--write-attributes", "--pattern", "models/*.json").returncode == 0
    assert archdiff("git-config", "--write-attributes", "--pattern", "models/*.json").returncode == 0
    lines = (root / ".gitattributes").read_text().splitlines()
    assert lines[0] == "*.png binary"
    assert lines.count("*.keras diff=archdiff") == 1 and "models/*.json diff=archdiff" in lines


def test_git_config_global_writes_the_user_config(repo, tmp_path):
    root, git, archdiff, env = repo
    proc = archdiff("git-config", "--global")
    assert proc.returncode == 0, proc.stderr
    assert "textconv" in (Path(env["HOME"]) / ".gitconfig").read_text()
    assert git("config", "--local", "--get", "diff.archdiff.textconv", check=False).returncode != 0


def test_git_config_outside_a_repository_fails_cleanly(tmp_path):
    proc = run_cli("git-config", cwd=tmp_path, env={"GIT_CEILING_DIRECTORIES": str(tmp_path.parent)})
    assert proc.returncode == 2 and "not inside a git repository" in proc.stderr


def test_git_diff_shows_architecture_lines(repo):
    root, git, archdiff, _ = repo
    assert archdiff("git-config", "--write-attributes").returncode == 0
    model = root / "model.keras"
    shutil.copy(FIXTURES / "keras3" / "functional.keras", model)
    weights = root / "old.h5"
    shutil.copy(FIXTURES / "keras3" / "functional.h5", weights)
    git("add", ".")
    git("commit", "-q", "-m", "model")
    edited_keras(FIXTURES / "keras3" / "functional.keras", model, set_activation("branch_b", "relu"))
    shutil.copy(FIXTURES / "keras3" / "resnet_small.h5", weights)
    out = git("diff").stdout
    assert "Binary files" not in out
    assert '-  activation: "tanh"' in out and '+  activation: "relu"' in out
    assert re.search(r"^\+layer conv1_conv \(Conv2D\)$", out, re.M)  # the .h5 went through the driver too
    # Without the driver git has nothing to say but "binary".
    raw = git("-c", "diff.archdiff.textconv=", "diff", "--no-textconv").stdout
    assert "Binary files" in raw


# -- the gate and the pre-commit hook ---------------------------------------------------------
def commit_model(repo, src=FIXTURES / "keras3" / "functional.keras", name="model.keras"):
    root, git, _, _ = repo
    shutil.copy(src, root / name)
    git("add", name)
    git("commit", "-q", "-m", f"add {name}")
    return root / name


def test_gate_default_fails_only_on_breaking_changes(repo):
    root, git, archdiff, _ = repo
    model = commit_model(repo)
    edited_keras(FIXTURES / "keras3" / "functional.keras", model, set_activation("branch_b", "relu"))
    proc = archdiff("gate", "model.keras")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "archdiff gate: passed" in proc.stdout and "weights-compatible" in proc.stdout
    assert archdiff("gate", "--fail-on", "any", "model.keras").returncode == 1

    def widen(config):
        for entry in config["config"]["layers"]:
            if entry["config"].get("name") == "aux_output":
                entry["config"]["units"] = 5

    edited_keras(FIXTURES / "keras3" / "functional.keras", model, widen)
    proc = archdiff("gate", "model.keras")
    assert proc.returncode == 1 and "archdiff gate: failed" in proc.stdout


def test_gate_uses_the_repository_policy(repo):
    root, git, archdiff, _ = repo
    model = commit_model(repo)
    (root / ".archdiff-policy.yaml").write_text("frozen: [branch_b]\n")
    edited_keras(FIXTURES / "keras3" / "functional.keras", model, set_activation("branch_b", "relu"))
    proc = archdiff("gate", "model.keras")
    assert proc.returncode == 1
    assert "FAIL frozen" in proc.stdout and "'branch_b' (frozen by 'branch_b') changed" in proc.stdout
    other = root / "other.yaml"
    other.write_text("frozen: [shared_dense]\n")
    assert archdiff("gate", "--policy", "other.yaml", "model.keras").returncode == 0


def test_gate_new_files_and_json(repo):
    root, git, archdiff, _ = repo
    commit_model(repo)
    shutil.copy(FIXTURES / "keras3" / "nested.keras", root / "new.keras")
    proc = archdiff("gate", "--format", "json", "model.keras", "new.keras")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    schema = json.loads((ROOT / "archdiff" / "schemas" / "diff.schema.json").read_text())
    jsonschema.Draft202012Validator({**schema, "$ref": "#/$defs/gateReport"}).validate(data)
    assert [f["status"] for f in data["files"]] == ["compared", "new"]
    assert data["files"][0]["report"]["classification"] == "identical"
    assert data["files"][0]["report"]["a"]["path"] == "HEAD:model.keras"
    proc = archdiff("gate", "--against", "no-such-rev", "model.keras")
    assert proc.returncode == 2 and "not a revision" in proc.stderr


def test_pre_commit_hook_definition_runs_the_gate(repo):
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    (hook,) = [h for h in hooks if h["id"] == "archdiff-gate"]
    assert hook["language"] == "python" and hook["pass_filenames"] is True
    assert hook["entry"].split()[:2] == ["archdiff", "gate"]
    pattern = re.compile(hook["files"])
    assert pattern.search("models/net.keras") and pattern.search("w.h5") and not pattern.search("notes.md")
    # Run the entry as pre-commit would: the staged files matching `files` as arguments.
    root, git, archdiff, env = repo
    model = commit_model(repo)

    def widen(config):
        for entry in config["config"]["layers"]:
            if entry["config"].get("name") == "main_output":
                entry["config"]["units"] = 2

    edited_keras(FIXTURES / "keras3" / "functional.keras", model, widen)
    git("add", "model.keras")
    staged = [f for f in git("diff", "--cached", "--name-only").stdout.split() if pattern.search(f)]
    argv = [sys.executable, "-m", "archdiff", *hook["entry"].split()[1:], *staged]
    proc = subprocess.run(argv, cwd=root, env={**os.environ, **env}, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "weights-breaking" in proc.stdout
