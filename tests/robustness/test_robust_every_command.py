"""Every command on every broken file: one clear error (or a correct result), nothing run, nothing left.

The corpus is ``fixtures/broken/`` (made by ``fixtures/make_broken.py``; its
``MANIFEST.json`` says what each file is and what archdiff must do with it).
Each file goes through layers, summary, export to every format, diff on
either side, textconv (with and without its fallback) and transfer as source
and as target: 16 command lines a file, run in one driver interpreter under
a memory cap, plus one command a file in a fresh process, as a user runs it.
Every run must: exit as the manifest says (2 for a broken file), print
exactly one ``archdiff: error:`` line that says why, print no traceback,
finish in seconds, leave its output folder empty (or hold one complete,
valid file), leave every input byte-identical, and never fire the canary.
"""
from __future__ import annotations

import os
from pathlib import Path

import harness
import pytest

CASES = harness.cases()


def _report(found: dict[str, list[str]]) -> str:
    return "\n".join(f"{command}: {problem}" for command, problems in found.items() for problem in problems)


@pytest.fixture(scope="module")
def corpus_runs(tmp_path_factory, canary_env, corpus_before):
    work = tmp_path_factory.mktemp("every")
    jobs = [job for case in CASES for job in harness.jobs_for(case, harness.CORPUS / case["file"], work / "out")]
    results = harness.run_driver(jobs, work, canary_env=canary_env)
    return jobs, results, work


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_every_command(case, corpus_runs):
    jobs, results, _ = corpus_runs
    found = {}
    known = set((case.get("known_bug") or {}).get("commands", ()))
    for job in jobs:
        if job.case["file"] == case["file"] and job.command not in known:
            problems = harness.problems(job, results.get(job.id))
            if problems:
                found[job.command] = problems
    assert not found, f"{case['file']} ({case['what']}):\n{_report(found)}"


def test_the_corpus_ran_in_full(corpus_runs):
    jobs, results, _ = corpus_runs
    assert len(jobs) == len(CASES) * harness.COMMANDS_PER_FILE
    assert {j.id for j in jobs} <= set(results)


def test_nothing_ran_and_nothing_was_extracted(corpus_runs, canary_env):
    _, _, work = corpus_runs
    assert not canary_env["canary"].exists(), "a payload in the corpus was executed"
    # zip_traversal_names.keras names ../../archdiff-evil.txt and /tmp/archdiff-evil.txt: never written.
    for folder in (work, work / "cwd", work.parent, Path("/tmp")):
        assert not (folder / "archdiff-evil.txt").exists()


def test_inputs_are_byte_identical(corpus_runs, corpus_before):
    assert harness.snapshot(harness.FIXTURES) == corpus_before


#: One command per file in a fresh process (rotating through the commands), as a user runs it.
FRESH = [(case, i % harness.COMMANDS_PER_FILE) for i, case in enumerate(CASES)]


@pytest.mark.parametrize("case, which", FRESH, ids=[c["file"] for c, _ in FRESH])
def test_fresh_process(case, which, tmp_path, canary_env):
    jobs = harness.jobs_for(case, harness.CORPUS / case["file"], tmp_path / "out")
    known = set((case.get("known_bug") or {}).get("commands", ()))
    job = next(j for j in jobs[which:] + jobs[:which] if j.command not in known)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    result = harness.run_fresh(job, canary_env, cwd=cwd)
    problems = harness.problems(job, result)
    assert not problems, f"{job.id}:\n" + "\n".join(problems)
    assert os.listdir(cwd) == []
