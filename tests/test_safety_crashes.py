"""Every crash of issue 14 is one error line with exit 2 (a closed pipe ends quietly), each with its test.

Expected numbers come from Python's own integer arithmetic; expected
behaviour at the process boundary (exit status, what stderr holds) from
running archdiff as a user does.
"""
from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import warnings

import pytest
from support import FIXTURES, ROOT, run_cli

from archdiff.cli.main import EXIT_CLOSED_PIPE

DIGITS = 400  # beyond a float (1.8e308): int -> float conversions overflow


@pytest.fixture
def huge_units(tmp_path):
    """keras3/sequential.json with its first Dense layer's units a 400-digit integer."""
    doc = json.loads((FIXTURES / "keras3" / "sequential.json").read_text())
    first = next(e for e in doc["config"]["layers"] if e["class_name"] == "Dense")
    units = int("9" * DIGITS)
    first["config"]["units"] = units
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(doc))
    inputs = doc["config"]["layers"][0]["config"]["batch_shape"][-1]
    return path, units, inputs * units + units  # that layer's kernel and bias


def one_error_line(err: str) -> bool:
    return err.count("\n") == 1 and err.startswith("archdiff: error: ") and "Traceback" not in err


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_a_count_of_hundreds_of_digits_formats_in_summary(huge_units, fmt, cli):
    path, _, params = huge_units
    code, out, err = cli("summary", path, "--format", fmt)
    assert code == 0, err
    if fmt == "json":
        data = json.loads(out)
        assert data["total_params"] > params  # the other layers add theirs
    else:
        assert f"{params:,}" in out


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_a_count_of_hundreds_of_digits_formats_in_diff(huge_units, fmt, cli, tmp_path):
    path, _, _ = huge_units
    code, out, err = cli("diff", FIXTURES / "keras3" / "sequential.json", path, "--format", fmt)
    assert code == 1, err
    if fmt == "json":
        assert json.loads(out)["params"]["percent"] is None  # beyond a float: not a number JSON can hold
    policy = tmp_path / "p.yaml"
    policy.write_text("max_param_growth: 10%\n")
    code, out, err = cli("diff", FIXTURES / "keras3" / "sequential.json", path, "--policy", policy)
    assert code == 1 and "FAIL max_param_growth" in out, err
    code, _, err = cli("diff", FIXTURES / "keras3" / "sequential.json", path, "--format", "html",
                       "-o", tmp_path / "d.html")
    assert code == 1, err


def test_human_bytes_of_any_size():
    from archdiff.textfmt import human_bytes, percent

    assert human_bytes(1536) == "1.50 KB" and human_bytes(5) == "5 B"
    assert human_bytes(10 ** DIGITS) == f"{10 ** DIGITS // 1024 ** 4:,} TB"
    assert percent(10 ** DIGITS, 1) is None and percent(1, 0) is None and percent(1, 4) == 25.0
    assert percent(10 ** DIGITS, 10 ** (DIGITS - 1)) == 1000.0  # exact integer division first


def test_a_full_stdout_is_one_error_line():
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "archdiff", "layers", str(FIXTURES / "keras3" /
                                                                                 "resnet_small.keras")],
                              stdout=full, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.returncode == 2 and one_error_line(proc.stderr), proc.stderr
    assert "cannot write the output to stdout" in proc.stderr


def test_a_closed_pipe_ends_quietly():
    read, write = os.pipe()
    os.close(read)  # nobody will ever read: the first write fails with EPIPE
    proc = subprocess.run([sys.executable, "-m", "archdiff", "layers", str(FIXTURES / "keras3" /
                                                                             "resnet_small.keras")],
                          stdout=write, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    os.close(write)
    assert proc.returncode == EXIT_CLOSED_PIPE and proc.stderr == ""
    # As `archdiff layers ... | head -1`: the reader leaves after one line.
    proc = subprocess.Popen([sys.executable, "-m", "archdiff", "textconv", str(FIXTURES / "keras3" /
                                                                               "resnet_small.keras")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(60) in (0, EXIT_CLOSED_PIPE)  # 0 when everything fit in the pipe before it closed
    assert proc.stderr.read() == b""


@pytest.fixture
def repo(tmp_path):
    env = {"HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q", str(tmp_path / "r")], check=True, env={**os.environ, **env})
    return tmp_path / "r", env


def test_git_config_refuses_a_gitattributes_fifo_instead_of_hanging(repo):
    root, env = repo
    fifo = root / ".gitattributes"
    os.mkfifo(fifo)
    proc = subprocess.run([sys.executable, "-m", "archdiff", "git-config", "--write-attributes"], cwd=root,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and one_error_line(proc.stderr) and "not a regular file" in proc.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_git_config_refuses_a_gitattributes_directory(repo):
    root, env = repo
    (root / ".gitattributes").mkdir()
    proc = run_cli("git-config", "--write-attributes", cwd=root, env=env)
    assert proc.returncode == 2 and one_error_line(proc.stderr) and "a directory" in proc.stderr
    assert (root / ".gitattributes").is_dir()


def test_git_config_writes_through_a_gitattributes_symlink(repo):
    root, env = repo
    real = root / "attrs.txt"
    real.write_text("*.txt text\n")
    (root / ".gitattributes").symlink_to("attrs.txt")
    assert run_cli("git-config", "--write-attributes", cwd=root, env=env).returncode == 0
    assert (root / ".gitattributes").is_symlink() and "*.keras diff=archdiff" in real.read_text()


def test_an_unexpected_exception_is_one_line_and_debug_shows_it(monkeypatch, cli):
    import archdiff.cli.layers as layers

    def boom(*args, **kwargs):
        raise ValueError("boom\x1b[2J\nsecond line")

    monkeypatch.setattr(layers, "layer_rows", boom)
    code, out, err = cli("layers", FIXTURES / "keras3" / "sequential.keras")
    assert code == 2 and out == "" and one_error_line(err)
    assert "unexpected ValueError: boom\\x1b[2J\\nsecond line" in err and "--debug" in err
    with pytest.raises(ValueError):
        cli("--debug", "layers", FIXTURES / "keras3" / "sequential.keras")


def test_quiet_frameworks_captures_cpp_lines_logging_and_warnings(capfd):
    from archdiff.lazy import quiet_frameworks

    with quiet_frameworks() as log:
        os.write(2, b"I0000 cudart_stub.cc:31] Could not find cuda drivers\n")
        logging.getLogger("tensorflow").warning("tf noise")
        logging.getLogger("absl").error("absl noise")
        warnings.warn("keras noise", UserWarning)
        print("archdiff's own progress", file=sys.stderr)
    captured = capfd.readouterr()
    assert "cudart" not in captured.err and "noise" not in captured.err
    assert "archdiff's own progress" in captured.err  # archdiff's own stderr still reaches the user
    assert "cudart_stub" in log.text and "tf noise" in log.text and "absl noise" in log.text
    assert "keras noise" in log.text
    with quiet_frameworks(show=True):
        os.write(2, b"shown with --debug\n")
    assert "shown with --debug" in capfd.readouterr().err
    assert logging.getLogger("tensorflow").handlers == [] or all(
        type(h).__name__ != "ListHandler" for h in logging.getLogger("tensorflow").handlers)


def test_a_resource_failure_inside_a_keras_error_is_reported_as_such():
    from archdiff.validate.rebuilding import _rebuild_error, resource_failure

    try:
        try:
            raise MemoryError("Unable to allocate 4.00 TiB for an array with shape (1000000, 1000000)")
        except MemoryError as cause:
            raise TypeError("Could not locate class 'Sequential'. Make sure custom classes are decorated") \
                from cause
    except TypeError as exc:
        assert "Unable to allocate" in resource_failure(exc)
        message = _rebuild_error(exc, "m.json", unsafe=False).one_line()
    assert "out of memory" in message and "does not know the class" not in message
    assert resource_failure(TypeError("Could not locate class 'Sequential'")) is None


@pytest.mark.tensorflow
def test_validate_errors_are_one_line_and_oom_says_so(tmp_path):
    proc = run_cli("validate", FIXTURES / "keras3" / "functional.keras", "--weights",
                   FIXTURES / "keras3" / "sequential.weights.h5", "--no-finetune")
    assert proc.returncode == 2 and one_error_line(proc.stderr), proc.stderr  # no TensorFlow/absl/Keras lines
    debug = run_cli("--debug", "validate", FIXTURES / "keras3" / "functional.keras", "--weights",
                    FIXTURES / "keras3" / "sequential.weights.h5", "--no-finetune")
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "UserWarning" in debug.stderr
    doc = json.loads((FIXTURES / "keras3" / "sequential.json").read_text())
    next(e for e in doc["config"]["layers"] if e["class_name"] == "Dense")["config"]["units"] = 10 ** 12
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps(doc))
    proc = run_cli("validate", huge, "--no-finetune")
    assert proc.returncode == 2 and one_error_line(proc.stderr) and "out of memory" in proc.stderr, proc.stderr


@pytest.mark.tensorflow
def test_a_factory_that_returns_no_model_is_one_error_line(tmp_path):
    (tmp_path / "archdiff_test_not_models.py").write_text(
        "def mapping():\n    return {'layers': []}\n"
        "def nothing():\n    return None\n"
        "def a_layer():\n    import keras\n    return keras.layers.Dense(3)\n")
    for name, what in (("mapping", "a dict"), ("nothing", "None"), ("a_layer", "a Dense")):
        proc = run_cli("layers", f"archdiff_test_not_models:{name}",
                       env={"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])})
        assert proc.returncode == 2 and one_error_line(proc.stderr), proc.stderr
        assert f"the factory returned {what}, not a Keras model" in proc.stderr
