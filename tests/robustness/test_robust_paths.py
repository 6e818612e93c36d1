"""Hostile paths rather than hostile contents: special files, links, odd names.

A FIFO nobody writes into is refused once ARCHDIFF_STREAM_WAIT has passed
(a plain open would block forever; a FIFO with a writer is read, see
tests/test_inputs.py), /dev/zero before a byte is read (it never ends); a
directory, a looping or dangling link, a missing file refused in one line;
a good model under a name with non-UTF-8 bytes, a newline, or the shape of
a ``module:callable`` spec is read as the file it is (the spec form imports
code only when no such file exists). Runs with a strict UTF-8 stdout, as in
a UTF-8 locale, where a non-UTF-8 file name used to crash the output.
"""
from __future__ import annotations

import os
import shutil

import harness

#: Commands run on each path (all but the export formats beyond json).
COMMANDS = {"layers", "summary", "export:json", "diff:a", "diff:b", "textconv", "textconv:strict",
            "transfer:source", "transfer:target"}
#: The good files under odd names: a copy of the good model works everywhere (and diffs identical to it);
#: a copy of the good weights has no config or graph to export (the HTML page lists its layers).
WEIGHTS_ONLY_EXITS = {"*": 0, **{f"export:{f}": 2 for f in harness.EXPORT_FORMATS if f != "html"}}
#: "os:system" has no suffix, so the transfer's OUT is named out.h5 while the target is a .keras: refused
#: (Keras picks the loader by the name).
OK_EXITS = {"non-utf8-name": {"*": 0}, "newline-name": {"*": 0}, "spec-shaped-name": {"*": 0, "transfer:target": 2},
            "non-utf8-weights": WEIGHTS_ONLY_EXITS}
NOT_FILES = {"fifo", "dev-zero", "directory", "symlink-loop", "dangling-symlink", "missing"}


def _paths(tmp_path):
    """(label, path, expect, message) for each hostile path."""
    out = []
    fifo = tmp_path / "pipe.keras"
    os.mkfifo(fifo)
    out.append(("fifo", fifo, "error", "nobody wrote into"))
    zero = tmp_path / "zero.h5"
    zero.symlink_to("/dev/zero")
    out.append(("dev-zero", zero, "error", "endless device"))
    folder = tmp_path / "model.keras"
    folder.mkdir()
    out.append(("directory", folder, "error", "directory"))
    loop = tmp_path / "loop.h5"
    loop.symlink_to(tmp_path / "loop.h5")
    out.append(("symlink-loop", loop, "error", "cannot read|no such file|symbolic links"))
    dangling = tmp_path / "dangling.keras"
    dangling.symlink_to(tmp_path / "nowhere.keras")
    out.append(("dangling-symlink", dangling, "error", "no such file"))
    out.append(("missing", tmp_path / "missing.weights.h5", "error", "no such file"))
    for label, name, good in (("non-utf8-name", b"mod\xe8le\xff.keras", harness.GOOD_MODEL),
                              ("newline-name", b"two\nlines.keras", harness.GOOD_MODEL),
                              ("spec-shaped-name", b"os:system", harness.GOOD_MODEL),
                              ("non-utf8-weights", b"w\xff.weights.h5", harness.GOOD_TARGET)):
        path = os.path.join(os.fsencode(tmp_path), name)
        shutil.copyfile(good, path)
        out.append((label, tmp_path / os.fsdecode(name), "ok", None))
    return out


def test_hostile_paths(tmp_path, canary_env):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    jobs = []
    for label, path, expect, message in _paths(inputs):
        case = {"file": label, "expect": expect, "message": message, "what": label,
                "exits": OK_EXITS.get(label)}
        jobs += [j for j in harness.jobs_for(case, path, tmp_path / "out") if j.command in COMMANDS]
    results = harness.run_driver(jobs, tmp_path / "work", canary_env=canary_env, timeout=300,
                                 env={"PYTHONIOENCODING": "utf-8:strict", "ARCHDIFF_STREAM_WAIT": "1"})
    found = {}
    for job in jobs:
        result = results.get(job.id)
        problems = harness.problems(job, result)
        if job.case["file"] in NOT_FILES and job.command == "textconv" and result and result["code"] == 2:
            # Not a file at all: textconv's raw fallback has nothing to show, so it is an error too.
            problems = [p for p in problems if not p.startswith("exit 2")]
        if problems:
            found[job.id] = problems
    assert not found, "\n".join(f"{k}: {v}" for k, v in found.items())
    assert not canary_env["canary"].exists()


def test_an_option_shaped_name_after_double_dash(tmp_path, canary_env):
    path = tmp_path / "-rf.keras"
    shutil.copyfile(harness.GOOD_MODEL, path)
    case = {"file": "dash-name", "expect": "ok", "what": "a name that looks like an option", "exits": {"*": 0}}
    job = harness.Job("dash-name::layers", "layers", ["layers", "--", str(path)], case, path)
    result = harness.run_fresh(job, canary_env, cwd=tmp_path)
    assert not harness.problems(job, result)
