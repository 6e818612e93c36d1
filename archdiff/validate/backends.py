"""``--backends tensorflow,jax``: the same port validated on each backend, one process each, and compared.

Keras 3 fixes its backend when it is first imported, so a process holds one:
:func:`validate_on` runs :mod:`archdiff.cli.validate_worker` once per backend
(``KERAS_BACKEND`` set for it), each running every check and saving its
seeded inputs and the model's outputs (a reference, as ``--save-reference``
writes). This process never imports Keras: it reads the references back and
compares every other backend's outputs with the first one's, output by
output, with the same tolerances and error statistic as check 3
(:mod:`~archdiff.validate.comparator`). The report (a
:class:`~archdiff.validate.report.BackendsReport`) holds each backend's own
report and where the backends disagree.

A backend that is not installed is refused before anything runs (one line,
with the install hint); one that fails to rebuild or run the model is a
failed report for that backend, with the error it gave.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from archdiff.errors import MissingDependencyError, UsageError
from archdiff.validate.comparator import compare_arrays
from archdiff.validate.options import ValidateOptions
from archdiff.validate.report import FAIL, PASS, SKIPPED, AgreementCheck, BackendsReport

#: A worker gets this long (seconds) before it is stopped and reported as an error.
WORKER_TIMEOUT = 3600


def parse_backends(text: str) -> tuple[str, ...]:
    """``"tensorflow,jax"`` -> ``("tensorflow", "jax")``, checked: known names, no repeats, at least two."""
    from archdiff.lazy import BACKENDS

    names = tuple(n.strip() for n in str(text).split(",") if n.strip())
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise UsageError(f"--backends: {', '.join(map(repr, unknown))} is not one of {', '.join(BACKENDS)}")
    if len(set(names)) != len(names) or len(names) < 2:
        raise UsageError(f"--backends '{text}': name two or more different backends, e.g. tensorflow,jax",
                         hint="for one backend use --backend NAME")
    return names


def check_installed(backends) -> None:
    """Refuse, in one line with the install hint, a backend whose framework is not installed."""
    from archdiff.lazy import BACKEND_INSTALL_HINTS, backend_installed

    for name in backends:
        if not backend_installed(name):
            raise MissingDependencyError(f"the Keras backend '{name}' is not installed",
                                         hint=BACKEND_INSTALL_HINTS[name])


def validate_on(target: str, weights: str | None, source: str | None, options: ValidateOptions, *,
                fmt: str = "text", progress: bool | None = None) -> BackendsReport:
    """Validate on each of ``options.backends`` in its own process, then compare their outputs."""
    backends = tuple(options.backends)
    if len(backends) < 2:
        raise UsageError("--backends needs two or more backends")
    check_installed(backends)
    started = time.perf_counter()
    reports, rendered, refs = [], [], []
    with tempfile.TemporaryDirectory(prefix="archdiff-backends-") as folder:
        for name in backends:
            report, text, ref = _run_worker(folder, name, target, weights, source, options, fmt, progress)
            reports.append(report)
            rendered.append(text)
            refs.append(ref)
        agreement = compare_backends(backends, refs, options)
    return BackendsReport(target=target, weights=weights or target, source=source, backends=backends,
                          reports=tuple(reports), rendered=tuple(rendered), agreement=agreement, options=options,
                          seconds=round(time.perf_counter() - started, 3))


def _run_worker(folder: str, name: str, target, weights, source, options: ValidateOptions, fmt: str,
                progress: bool | None):
    ref = os.path.join(folder, f"{name}.npz")
    job = {
        "target": target, "weights": weights, "source": source, "format": fmt,
        "options": options.with_changes(backend=name, backends=(), save_reference=ref).to_dict(),
        "report_json": os.path.join(folder, f"{name}.json"), "report_text": os.path.join(folder, f"{name}.{fmt}"),
        # The reference is this comparison's own temporary file: not one the user asked for.
        "internal_reference": True,
    }
    job_path = os.path.join(folder, f"{name}.job.json")
    with open(job_path, "w", encoding="utf-8") as fh:
        json.dump(job, fh)
    env = dict(os.environ, KERAS_BACKEND=name)
    if progress is False:
        env["ARCHDIFF_NO_PROGRESS"] = "1"
    # The package this process runs from, whatever the working folder of the child.
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in [env.get("PYTHONPATH")] if p])
    try:
        done = subprocess.run([sys.executable, "-m", "archdiff.cli.validate_worker", job_path], env=env,
                              stdout=subprocess.PIPE, stderr=None if progress else subprocess.PIPE, text=True,
                              timeout=WORKER_TIMEOUT)
        code, err = done.returncode, done.stderr or ""
    except subprocess.TimeoutExpired:
        code, err = 2, f"archdiff: error: the {name} run took more than {WORKER_TIMEOUT} s and was stopped\n"
    if code in (0, 1) and os.path.isfile(job["report_json"]):
        with open(job["report_json"], encoding="utf-8") as fh:
            report = json.load(fh)
        with open(job["report_text"], encoding="utf-8") as fh:
            text = fh.read()
        return report, text, (ref if os.path.isfile(ref) else None)
    lines = [line for line in err.splitlines() if line.startswith("archdiff")] or err.strip().splitlines()[-1:]
    message = lines[-1] if lines else f"the {name} run exited with {code}"
    report = {"ok": False, "exit_code": 2, "error": message, "failures": [f"the run failed: {message}"],
              "checks": {}, "rebuild": {"backend": name}}
    return report, f"the {name} run failed: {message}\n", None


def compare_backends(backends, refs, options: ValidateOptions) -> AgreementCheck:
    """Every other backend's outputs against the first one's that ran, on the same seeded inputs."""
    from archdiff.validate.reference import load_reference

    loaded = [(name, load_reference(ref)) for name, ref in zip(backends, refs) if ref]
    missing = [name for name, ref in zip(backends, refs) if not ref]
    if len(loaded) < 2:
        why = f"fewer than two backends ran the model ({', '.join(missing)} failed)" if missing else \
            "fewer than two backends ran the model"
        return AgreementCheck(status=SKIPPED if not missing else FAIL, reason=why,
                              failures=(f"backends: {why}",) if missing else ())
    baseline, base = loaded[0]
    comparisons, failures = [], []
    for name, ref in loaded[1:]:
        same_inputs = all(k in ref.inputs and np.array_equal(v, ref.inputs[k]) for k, v in base.inputs.items())
        if not same_inputs:
            failures.append(f"backends: {name} was fed other inputs than {baseline} (a seeding difference)")
        for output, expected in base.outputs.items():
            got = ref.outputs.get(output)
            if got is None:
                failures.append(f"backends: {name} has no output '{output}'")
                continue
            atol, rtol, stat = options.tolerances.for_output(output)
            result = compare_arrays(got, expected, atol=atol, rtol=rtol, stat=stat)
            comparisons.append({"backend": name, "baseline": baseline, "output": output,
                                "status": PASS if result.passed else FAIL, "shape": list(result.shape),
                                **result.figures(), "reason": result.describe()})
            if not result.passed:
                failures.append(f"backends: output '{output}' on {name} differs from {baseline} "
                                f"({result.describe()})")
    failures += [f"backends: the {name} run failed, so it was not compared" for name in missing]
    if failures:
        return AgreementCheck(status=FAIL, baseline=baseline, comparisons=tuple(comparisons),
                              failures=tuple(failures),
                              reason=f"{len(failures)} disagreement(s) across {', '.join(backends)}")
    largest = max((c["max_abs_diff"] or 0.0) for c in comparisons) if comparisons else 0.0
    others = ", ".join(name for name, _ in loaded[1:])
    verb = "agrees" if len(loaded) == 2 else "agree"
    batch = next(iter(base.inputs.values())).shape[0] if base.inputs else 0
    return AgreementCheck(status=PASS, baseline=baseline, comparisons=tuple(comparisons),
                          reason=f"{others} {verb} with {baseline} on {len(base.outputs)} output(s) of the same "
                                 f"seeded batch of {batch} (max |diff| {largest:.3g})")
