"""A gate that never passes silently, and git integration that cannot break ``git diff``.

A path in neither the working tree nor the revision is an error; a frozen
pattern that matches nothing fails, named; the policy is the one at
``--against``, and a policy changed in the working tree is reported and can
only add failures (``--policy-from-worktree`` trusts it); what a model's
outputs mean is its own kind (``output-changing``) that fails the default
gate; help texts come from the tables the code uses; the Markdown names
files relative to the repository. ``git-config`` writes a command that works
without archdiff on PATH, and a textconv failure is a placeholder line.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import FIXTURES, run_cli
from test_git import edited_keras, set_activation

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
MODEL = FIXTURES / "keras3" / "functional.keras"


@pytest.fixture
def repo(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    root = tmp_path / "repo"
    root.mkdir()
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "NO_COLOR": "1"}

    def git(*args, check=True, extra_env=None):
        proc = subprocess.run(["git", *args], cwd=root, env={**os.environ, **env, **(extra_env or {})},
                              capture_output=True, text=True)
        if check and proc.returncode:
            raise AssertionError(proc.stderr)
        return proc

    def archdiff(*args, cwd=None):
        return run_cli(*args, cwd=cwd or root, env=env)

    def commit(files: dict[str, Path | str]):
        for name, content in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copy(content, path)
            else:
                path.write_text(content)
        git("add", "-A")
        git("commit", "-q", "-m", "commit")

    git("init", "-q", "-b", "main")
    return root, git, archdiff, commit


def one_error_line(err: str) -> bool:
    return err.count("\n") == 1 and err.startswith("archdiff: error: ")


# -- nothing passes silently -------------------------------------------------------------------
def test_a_path_in_neither_the_tree_nor_the_revision_is_an_error(repo):
    root, git, archdiff, commit = repo
    commit({"model.keras": MODEL})
    proc = archdiff("gate", "model.keras", "typo.keras")
    assert proc.returncode == 2 and one_error_line(proc.stderr), proc.stderr
    assert "'typo.keras' is neither in the working tree nor at HEAD" in proc.stderr
    (root / "model.keras").unlink()
    proc = archdiff("gate", "model.keras")  # deleted since HEAD: said, and nothing to check
    assert proc.returncode == 0 and "model.keras: deleted in the working tree" in proc.stdout


def test_a_frozen_pattern_that_matches_nothing_fails_named(repo):
    root, git, archdiff, commit = repo
    commit({"model.keras": MODEL, ".archdiff-policy.yaml": "frozen: [branch_b, 'shared_dnse']\n"})
    proc = archdiff("gate", "model.keras")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL frozen" in proc.stdout and "frozen pattern 'shared_dnse' matches no layer of A or B" in proc.stdout


def test_the_policy_at_the_revision_decides_and_a_loosened_one_cannot_pass(repo):
    root, git, archdiff, commit = repo
    commit({"model.keras": MODEL, ".archdiff-policy.yaml": "frozen: [branch_b]\n"})
    edited_keras(MODEL, root / "model.keras", set_activation("branch_b", "relu"))
    (root / ".archdiff-policy.yaml").write_text("frozen: []\n")  # the change relaxes its own gate
    proc = archdiff("gate", "model.keras")
    assert proc.returncode == 1, proc.stdout
    assert "policy HEAD:.archdiff-policy.yaml" in proc.stdout
    assert "the policy .archdiff-policy.yaml differs in the working tree from HEAD" in proc.stdout
    assert "'branch_b' (frozen by 'branch_b') changed" in proc.stdout
    md = archdiff("gate", "--format", "markdown", "model.keras")
    assert md.returncode == 1 and "differs in the working tree" in md.stdout
    json_run = archdiff("gate", "--format", "json", "model.keras")
    import json

    data = json.loads(json_run.stdout)
    assert data["policy"] == "HEAD:.archdiff-policy.yaml" and data["notes"] and data["exit_code"] == 1
    # Only a flag trusts the working tree's policy.
    trusted = archdiff("gate", "--policy-from-worktree", "model.keras")
    assert trusted.returncode == 0, trusted.stdout
    assert "taken from the working tree (--policy-from-worktree)" in trusted.stdout


def test_a_tightened_working_tree_policy_adds_failures(repo):
    root, git, archdiff, commit = repo
    commit({"model.keras": MODEL, ".archdiff-policy.yaml": "allow_added: true\n"})
    edited_keras(MODEL, root / "model.keras", set_activation("branch_b", "relu"))
    assert archdiff("gate", "model.keras").returncode == 0  # the committed policy alone passes
    (root / ".archdiff-policy.yaml").write_text("frozen: [branch_b]\n")
    proc = archdiff("gate", "model.keras")
    assert proc.returncode == 1 and ".archdiff-policy.yaml (working tree): 1 frozen layer changed" in proc.stdout


def test_a_new_policy_cannot_loosen_the_default_gate(repo):
    root, git, archdiff, commit = repo
    commit({"model.keras": MODEL})

    def widen(config):
        for entry in config["config"]["layers"]:
            if entry["config"].get("name") == "aux_output":
                entry["config"]["units"] = 5

    edited_keras(MODEL, root / "model.keras", widen)
    assert archdiff("gate", "model.keras").returncode == 1  # an output of another shape: the default gate fails
    (root / ".archdiff-policy.yaml").write_text("fail_on: []\n")  # a new policy that would pass everything
    proc = archdiff("gate", "model.keras")
    assert proc.returncode == 1 and "is new in the working tree (not at HEAD)" in proc.stdout
    assert archdiff("gate", "--policy-from-worktree", "model.keras").returncode == 0
    # A policy outside the repository (a CI's own) is read as it is.
    outside = root.parent / "ci-policy.yaml"
    outside.write_text("fail_on: []\n")
    assert archdiff("gate", "--policy", str(outside), "model.keras").returncode == 0


def test_a_policy_deleted_in_the_working_tree_still_decides(repo):
    root, git, archdiff, commit = repo
    commit({"model.keras": MODEL, ".archdiff-policy.yaml": "frozen: [branch_b]\n"})
    edited_keras(MODEL, root / "model.keras", set_activation("branch_b", "relu"))
    (root / ".archdiff-policy.yaml").unlink()
    proc = archdiff("gate", "model.keras")
    assert proc.returncode == 1 and "deleted in the working tree; HEAD's decides" in proc.stdout


def test_a_policy_fifo_is_refused_not_waited_on(repo, tmp_path):
    root, git, archdiff, commit = repo
    commit({"model.keras": MODEL})
    os.mkfifo(root / ".archdiff-policy.yaml")
    proc = archdiff("gate", "model.keras")
    assert proc.returncode == 2 and "not a regular file" in proc.stderr


# -- what the outputs mean ---------------------------------------------------------------------
def test_an_output_activation_change_is_output_changing_and_fails_the_default_gate(repo):
    root, git, archdiff, commit = repo
    commit({"model.keras": MODEL})
    edited_keras(MODEL, root / "model.keras", set_activation("aux_output", "linear"))  # softmax -> logits
    proc = archdiff("gate", "model.keras")
    assert proc.returncode == 1, proc.stdout
    assert "archdiff: output-changing" in proc.stdout and "activation: softmax -> linear" in proc.stdout
    # The same change on a layer that is not an output stays weights-compatible and passes.
    edited_keras(MODEL, root / "model.keras", set_activation("branch_b", "linear"))
    assert archdiff("gate", "model.keras").returncode == 0


def test_output_meaning_kind_is_in_the_vocabulary(tmp_path):
    from test_diff_support import mlp, save

    from archdiff import load
    from archdiff.diff import KINDS, diff, validate_diff
    from archdiff.diff.kinds import for_output_layer, output_meaning_changed
    from archdiff.vocabulary import GATE_DEFAULT_FAIL_ON

    assert KINDS.index("weights-breaking") < KINDS.index("output-changing") < KINDS.index("interface-changing")
    assert "output-changing" in GATE_DEFAULT_FAIL_ON
    a = mlp([8, 3], names=["hidden", "classes"])
    b = mlp([8, 5], names=["hidden", "classes"])  # the number of classes
    d = diff(load(save(a, tmp_path / "a.json")), load(save(b, tmp_path / "b.json")))
    validate_diff(d)
    (units,) = [c for m in d.matched for c in m.changes if c.path == "units"]
    assert units.effect == "output-changing" and "output-changing" in d.kinds
    assert output_meaning_changed("activation", "softmax", "linear", "changed").effect == "output-changing"
    plain = for_output_layer(output_meaning_changed("units", 1, 2, "changed"))
    assert plain.effect == "output-changing"


# -- help and paths ---------------------------------------------------------------------------------
def test_gate_help_is_generated_from_the_tables():
    from archdiff.vocabulary import DIFF_FORMATS, FAIL_ON_CHOICES, GATE_DEFAULT_FAIL_ON, GATE_FORMATS

    gate = run_cli("gate", "--help").stdout
    assert "html" not in GATE_FORMATS and "{" + ",".join(GATE_FORMATS) + "}" in gate and "html" not in gate
    flat = " ".join(gate.split()).replace("- ", "-")  # argparse breaks lines after a hyphen
    assert "default: " + ", ".join(GATE_DEFAULT_FAIL_ON) in flat
    assert all(k in flat for k in FAIL_ON_CHOICES)
    diff_help = " ".join(run_cli("diff", "--help").stdout.split())
    assert "{" + ",".join(DIFF_FORMATS) + "}" in diff_help and "default: any" in diff_help
    refused = run_cli("gate", "--format", "html", "x.keras")
    assert refused.returncode == 2 and "invalid choice" in refused.stderr


def test_gate_markdown_names_files_relative_to_the_repository(repo):
    root, git, archdiff, commit = repo
    commit({"models/vision/net.keras": MODEL, ".archdiff-policy.yaml": "frozen: [branch_b]\n"})
    edited_keras(MODEL, root / "models" / "vision" / "net.keras", set_activation("branch_b", "relu"))
    for cwd, arg in ((root, "models/vision/net.keras"), (root / "models", "vision/net.keras")):
        proc = archdiff("gate", "--format", "markdown", arg, cwd=cwd)
        assert proc.returncode == 1, proc.stderr
        assert "| file | `HEAD:models/vision/net.keras` | `models/vision/net.keras` |" in proc.stdout
        assert "**Policy** `.archdiff-policy.yaml`" in proc.stdout


# -- git diff cannot break -------------------------------------------------------------------------
def test_git_config_command_works_without_archdiff_on_path(repo):
    root, git, archdiff, commit = repo
    assert archdiff("git-config", "--write-attributes").returncode == 0
    command = git("config", "--get", "diff.archdiff.textconv").stdout.strip()
    words = command.split()
    assert words[0].startswith(("/", "PYTHONPATH=/")), command
    assert words[-1] == "textconv"
    commit({"model.keras": MODEL})
    edited_keras(MODEL, root / "model.keras", set_activation("branch_b", "relu"))
    git_dir = os.path.dirname(shutil.which("git"))
    bare = {"PATH": git_dir, "PYTHONPATH": ""}  # neither archdiff nor this Python on PATH
    assert shutil.which("archdiff", path=git_dir) is None or os.path.dirname(sys.executable) == git_dir
    out = git("diff", extra_env=bare).stdout
    assert '-  activation: "tanh"' in out and '+  activation: "relu"' in out


def test_a_textconv_failure_is_a_placeholder_and_git_diff_goes_on(repo, cli):
    root, git, archdiff, commit = repo
    assert archdiff("git-config", "--write-attributes").returncode == 0
    commit({"model.keras": MODEL, "broken.h5": FIXTURES / "keras3" / "functional.h5"})
    (root / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\xff" * 64)  # an HDF5 signature and nothing else
    edited_keras(MODEL, root / "model.keras", set_activation("branch_b", "relu"))
    proc = git("diff", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "# archdiff textconv: not a readable model (" in proc.stdout
    assert '+  activation: "relu"' in proc.stdout  # the rest of the diff is still there
    placeholder = [line for line in proc.stdout.splitlines() if "archdiff textconv: not a readable" in line]
    assert len(placeholder) == 1 and "sha256" in placeholder[0]
    # Any failure, not only a refused file: an unexpected exception is a placeholder too.
    import archdiff.cli.textconv as textconv

    def boom(*args, **kwargs):
        raise RuntimeError("reader bug")

    original = textconv.load_model
    textconv.load_model = boom
    try:
        code, out, err = cli("textconv", root / "model.keras")
    finally:
        textconv.load_model = original
    assert code == 0 and err == "" and out.count("\n") == 1 and "RuntimeError" in out
