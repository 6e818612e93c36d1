"""What ``archdiff validate`` found: the status words and one frozen record per check.

Every record here is a ``@dataclass(frozen=True)`` built once, by the check
that computed it, from what it measured; sequences are tuples. Nothing here
runs TensorFlow or formats for people: :mod:`archdiff.validate.render` turns
a :class:`ValidationReport` into text, JSON or Markdown, and ``to_dict()``
gives the JSON document (``archdiff/schemas/validate.schema.json``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from archdiff.validate.options import ValidateOptions

#: The status of a check (and of one compared output).
PASS = "pass"
FAIL = "fail"
SKIPPED = "skipped"
#: The status of one transferred layer in the weights-arrived check.
ARRIVED = "arrived"
FAILED = "failed"
#: An output of the shared sub-graph that could not be computed or compared.
NOT_COMPARED = "not_compared"

#: How many layers the report lists by name before it counts the rest.
MAX_LISTED = 50


def listed(names) -> list[str]:
    """The first :data:`MAX_LISTED` names, then "... and N more"."""
    names = list(names)
    return names[:MAX_LISTED] + ([f"... and {len(names) - MAX_LISTED} more"] if len(names) > MAX_LISTED else [])


# -- 1. rebuild -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RebuildResult:
    status: str
    model_name: str = ""
    class_name: str = ""
    keras_version: str = ""
    layers: int = 0
    params: int = 0
    safe_mode: bool = True
    imports: tuple[str, ...] = ()
    weights_path: str = ""
    weights_format: str = ""
    notes: tuple[str, ...] = ()
    #: The Keras backend that ran (tensorflow, jax, torch) and its version.
    backend: str = ""
    backend_version: str = ""

    def to_dict(self) -> dict:
        return {
            "status": self.status, "model_name": self.model_name, "class_name": self.class_name,
            "keras_version": self.keras_version, "backend": self.backend, "backend_version": self.backend_version,
            "layers": self.layers, "params": self.params,
            "safe_mode": self.safe_mode, "imports": list(self.imports), "weights_path": self.weights_path,
            "weights_format": self.weights_format, "notes": list(self.notes),
        }


# -- 2. the weights arrived ------------------------------------------------------------------------
@dataclass(frozen=True)
class VariableResult:
    """One transferred variable: its live value against the source file's."""

    name: str
    source_name: str
    shape: tuple[int, ...]
    dtype: str
    equal: bool
    max_abs_diff: float | None = None
    #: What the live variable holds instead, where it matches something known.
    holds: str | None = None
    cast_from: str | None = None

    def to_dict(self) -> dict:
        return {
            "name": self.name, "source_name": self.source_name, "shape": list(self.shape), "dtype": self.dtype,
            "equal": self.equal, "max_abs_diff": self.max_abs_diff, "holds": self.holds, "cast_from": self.cast_from,
        }


@dataclass(frozen=True)
class LayerArrival:
    target: str
    source: str
    #: ARRIVED or FAILED
    status: str
    variables: tuple[VariableResult, ...] = ()
    message: str = ""

    def to_dict(self) -> dict:
        return {"target": self.target, "source": self.source, "status": self.status,
                "variables": [v.to_dict() for v in self.variables], "message": self.message}


@dataclass(frozen=True)
class WeightsCheck:
    status: str
    reason: str = ""
    layers: tuple[LayerArrival, ...] = ()
    #: Target layers with weights that were not expected to arrive, and why: ``{"layer", "reason"}``.
    not_transferred: tuple[dict, ...] = ()
    #: Source layers with weights that no target layer took.
    unused_source: tuple[str, ...] = ()
    checked_variables: int = 0
    equal_variables: int = 0
    failures: tuple[str, ...] = ()

    @property
    def arrived(self) -> list[str]:
        return [layer.target for layer in self.layers if layer.status == ARRIVED]

    def to_dict(self) -> dict:
        return {
            "status": self.status, "reason": self.reason, "layers": [x.to_dict() for x in self.layers],
            "arrived_layers": len(self.arrived), "not_transferred": list(self.not_transferred),
            "unused_source": list(self.unused_source), "checked_variables": self.checked_variables,
            "equal_variables": self.equal_variables, "failures": list(self.failures),
        }


# -- 3. the outputs of the shared sub-graph ------------------------------------------------------
@dataclass(frozen=True)
class OutputResult:
    """One compared output: its figures (:class:`~archdiff.validate.comparator.Comparison`) and status."""

    target_layer: str
    source_layer: str
    #: PASS, FAIL or NOT_COMPARED
    status: str
    shape: tuple[int, ...] | None = None
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    reason: str = ""
    mean_abs_diff: float | None = None
    median_abs_diff: float | None = None
    mean_rel_diff: float | None = None
    median_rel_diff: float | None = None
    cosine_similarity: float | None = None
    #: Elements failing the elementwise test, of ``size``.
    mismatched: int | None = None
    size: int | None = None
    #: The tolerances and the error statistic this output was judged by.
    atol: float | None = None
    rtol: float | None = None
    error_stat: str | None = None

    def to_dict(self) -> dict:
        return {"target_layer": self.target_layer, "source_layer": self.source_layer, "status": self.status,
                "shape": list(self.shape) if self.shape is not None else None, "max_abs_diff": self.max_abs_diff,
                "max_rel_diff": self.max_rel_diff, "mean_abs_diff": self.mean_abs_diff,
                "median_abs_diff": self.median_abs_diff, "mean_rel_diff": self.mean_rel_diff,
                "median_rel_diff": self.median_rel_diff, "cosine_similarity": self.cosine_similarity,
                "mismatched": self.mismatched, "size": self.size, "atol": self.atol, "rtol": self.rtol,
                "error_stat": self.error_stat, "reason": self.reason}


def output_result(target_layer: str, source_layer: str, comparison) -> OutputResult:
    """An :class:`OutputResult` from a comparator :class:`~archdiff.validate.comparator.Comparison`."""
    status = PASS if comparison.passed else (NOT_COMPARED if not comparison.comparable else FAIL)
    figures = comparison.figures()
    return OutputResult(target_layer=target_layer, source_layer=source_layer, status=status, shape=comparison.shape,
                        reason=comparison.describe() if status != PASS else "",
                        **{k: figures[k] for k in ("max_abs_diff", "max_rel_diff", "mean_abs_diff", "median_abs_diff",
                                                   "mean_rel_diff", "median_rel_diff", "cosine_similarity",
                                                   "mismatched", "size", "atol", "rtol", "error_stat")})


@dataclass(frozen=True)
class OutputsCheck:
    status: str
    reason: str = ""
    atol: float = 0.0
    rtol: float = 0.0
    batch: int = 0
    seed: int = 0
    input_shapes: dict = field(default_factory=dict)
    source_input_shapes: dict = field(default_factory=dict)
    shared_layers: tuple[str, ...] = ()
    #: Paired layers left out of the shared sub-graph, and why (first few): ``{"layer", "reason"}``.
    excluded: tuple[dict, ...] = ()
    outputs: tuple[OutputResult, ...] = ()
    #: Where a difference starts: shared layers that differ while their inputs agree.
    origin: tuple[dict, ...] = ()
    failures: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    check_error_stat: str = "elementwise"
    #: Per-output tolerances given (``{"atol": {name: value}, ...}``; "" is the default).
    tolerances: dict = field(default_factory=dict)
    #: Nested models of the target whose inside was compared with the source (the guide's ``xception``).
    nested: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "status": self.status, "reason": self.reason, "atol": self.atol, "rtol": self.rtol,
            "check_error_stat": self.check_error_stat, "tolerances": dict(self.tolerances),
            "nested": list(self.nested), "origin": list(self.origin),
            "batch": self.batch, "seed": self.seed, "input_shapes": dict(self.input_shapes),
            "source_input_shapes": dict(self.source_input_shapes), "shared_layers": list(self.shared_layers),
            "excluded": list(self.excluded), "outputs": [o.to_dict() for o in self.outputs],
            "failures": list(self.failures), "notes": list(self.notes),
        }


# -- the saved reference (--reference / --save-reference) -----------------------------------------
@dataclass(frozen=True)
class ReferenceCheck:
    """The model's outputs against a saved reference's, on the reference's own inputs."""

    status: str
    reason: str = ""
    path: str = ""
    #: What the reference says about where it was recorded (Keras version, backend, model name ...).
    recorded: dict = field(default_factory=dict)
    outputs: tuple[OutputResult, ...] = ()
    failures: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"status": self.status, "reason": self.reason, "path": self.path, "recorded": dict(self.recorded),
                "outputs": [o.to_dict() for o in self.outputs], "failures": list(self.failures)}


# -- 4. fine-tuning ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StageResult:
    name: str
    epochs: int
    steps: int
    learning_rate: float
    trainable_layers: tuple[str, ...] = ()
    frozen_layers: tuple[str, ...] = ()
    loss: tuple[float, ...] = ()
    loss_before: float | None = None
    metric_before: float | None = None
    metric_after: float | None = None
    val_loss_after: float | None = None
    time_per_step_ms: float | None = None
    frozen_variables: int = 0
    trainable_variables: int = 0
    frozen_changed: tuple[str, ...] = ()
    trainable_unchanged: tuple[str, ...] = ()
    #: Trainable variables that did not change because the loss does not depend on them (measured by
    #: perturbing them: an attention key bias); not a failure.
    loss_independent: tuple[str, ...] = ()
    loss_finite: bool = True
    loss_falling: bool | None = None
    failures: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "name": self.name, "epochs": self.epochs, "steps": self.steps, "learning_rate": self.learning_rate,
            "trainable_layers": listed(self.trainable_layers), "frozen_layers": listed(self.frozen_layers),
            "trainable_layer_count": len(self.trainable_layers), "frozen_layer_count": len(self.frozen_layers),
            "loss": list(self.loss), "loss_before": self.loss_before, "metric_before": self.metric_before,
            "metric_after": self.metric_after, "val_loss_after": self.val_loss_after,
            "time_per_step_ms": self.time_per_step_ms, "frozen_variables": self.frozen_variables,
            "trainable_variables": self.trainable_variables, "frozen_changed": list(self.frozen_changed),
            "trainable_unchanged": list(self.trainable_unchanged),
            "loss_independent": list(self.loss_independent), "loss_finite": self.loss_finite,
            "loss_falling": self.loss_falling, "failures": list(self.failures),
        }


@dataclass(frozen=True)
class ScratchResult:
    epochs: int
    steps: int
    learning_rate: float
    loss: tuple[float, ...] = ()
    metric_after: float | None = None
    time_per_step_ms: float | None = None

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "steps": self.steps, "learning_rate": self.learning_rate,
                "loss": list(self.loss), "metric_after": self.metric_after,
                "time_per_step_ms": self.time_per_step_ms}


@dataclass(frozen=True)
class FinetuneCheck:
    status: str
    reason: str = ""
    data: dict = field(default_factory=dict)
    device: dict = field(default_factory=dict)
    freeze: dict = field(default_factory=dict)
    loss_name: str = ""
    metric: str = "accuracy"
    #: The loss of each output, by output name, and why it was chosen.
    losses: dict = field(default_factory=dict)
    stages: tuple[StageResult, ...] = ()
    scratch: ScratchResult | None = None
    transfer_gain: float | None = None
    failures: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def metric_before(self) -> float | None:
        return self.stages[0].metric_before if self.stages else None

    @property
    def metric_after(self) -> float | None:
        return self.stages[-1].metric_after if self.stages else None

    def to_dict(self) -> dict:
        return {
            "status": self.status, "reason": self.reason, "data": dict(self.data), "device": dict(self.device),
            "freeze": dict(self.freeze), "loss_name": self.loss_name, "metric": self.metric,
            "losses": dict(self.losses),
            "metric_before": self.metric_before, "metric_after": self.metric_after,
            "stages": [s.to_dict() for s in self.stages],
            "scratch": self.scratch.to_dict() if self.scratch else None, "transfer_gain": self.transfer_gain,
            "failures": list(self.failures), "notes": list(self.notes),
        }


# -- the whole report ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ValidationReport:
    """What ``archdiff validate`` found.

    ``exit_code`` is 0 when every check passed, a check skipped only where
    ``--allow-skip`` accepts it; 1 when a check failed or was skipped
    without that (a check that cannot run proves nothing, and says why).
    """

    target: str
    weights: str
    source: str | None
    rebuild: RebuildResult
    weights_arrived: WeightsCheck
    outputs: OutputsCheck
    finetune: FinetuneCheck
    options: ValidateOptions = field(default_factory=ValidateOptions)
    seconds: float | None = None
    reference: ReferenceCheck | None = None
    #: Where ``--save-reference`` wrote the inputs and outputs, if it was given.
    saved_reference: str | None = None
    #: Seconds each stage took, in order.
    timings: dict = field(default_factory=dict)
    #: The process' peak resident memory, in MiB (where the platform tells).
    peak_rss_mb: float | None = None

    @property
    def checks(self) -> list[tuple[str, str]]:
        found = [("rebuild", self.rebuild.status), ("weights_arrived", self.weights_arrived.status),
                 ("outputs", self.outputs.status), ("finetune", self.finetune.status)]
        if self.reference is not None:
            found.append(("reference", self.reference.status))
        return found

    def reason_of(self, check: str) -> str:
        record = {"weights_arrived": self.weights_arrived, "outputs": self.outputs, "finetune": self.finetune,
                  "reference": self.reference}.get(check)
        return getattr(record, "reason", "") or ""

    @property
    def unaccepted_skips(self) -> list[str]:
        """Checks that were skipped without ``--allow-skip`` accepting it."""
        return [name for name, status in self.checks if status == SKIPPED and not self.options.skip_allowed(name)]

    @property
    def failures(self) -> list[str]:
        found = list(self.weights_arrived.failures) + list(self.outputs.failures) + list(self.finetune.failures)
        if self.reference is not None:
            found += list(self.reference.failures)
        for name in self.unaccepted_skips:
            found.append(f"check '{name}' was skipped: {self.reason_of(name)} (--allow-skip {name} accepts this)")
        return found

    @property
    def ok(self) -> bool:
        return all(status != FAIL for _, status in self.checks) and not self.unaccepted_skips

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict:
        return {
            "schema_version": 2,
            "target": self.target, "weights": self.weights, "source": self.source, "ok": self.ok,
            "exit_code": self.exit_code, "checks": {name: status for name, status in self.checks},
            "skipped_not_allowed": self.unaccepted_skips,
            "failures": self.failures, "rebuild": self.rebuild.to_dict(),
            "weights_arrived": self.weights_arrived.to_dict(), "outputs": self.outputs.to_dict(),
            "finetune": self.finetune.to_dict(),
            "reference": self.reference.to_dict() if self.reference is not None else None,
            "saved_reference": self.saved_reference, "options": self.options.to_dict(), "seconds": self.seconds,
            "timings": dict(self.timings), "peak_rss_mb": self.peak_rss_mb,
        }


# -- several backends ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgreementCheck:
    """The same port's outputs on each backend, on the same seeded batch, against the first backend's."""

    status: str
    reason: str = ""
    #: The backend the others are compared with.
    baseline: str = ""
    #: ``{"backend", "output", ...figures}`` for every other backend and output.
    comparisons: tuple[dict, ...] = ()
    failures: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"status": self.status, "reason": self.reason, "baseline": self.baseline,
                "comparisons": [dict(c) for c in self.comparisons], "failures": list(self.failures)}


@dataclass(frozen=True)
class BackendsReport:
    """``--backends a,b``: one validation per backend (each in its own process) and their agreement."""

    target: str
    weights: str
    source: str | None
    backends: tuple[str, ...]
    #: Each backend's report as JSON data (``ValidationReport.to_dict()``), in order.
    reports: tuple[dict, ...]
    #: Each backend's report rendered in the requested format, in order.
    rendered: tuple[str, ...]
    agreement: AgreementCheck
    options: ValidateOptions = field(default_factory=ValidateOptions)
    seconds: float | None = None

    @property
    def failures(self) -> list[str]:
        found = []
        for name, report in zip(self.backends, self.reports):
            found += [f"[{name}] {f}" for f in report.get("failures") or []]
        return found + list(self.agreement.failures)

    @property
    def ok(self) -> bool:
        return all(r.get("exit_code") == 0 for r in self.reports) and self.agreement.status == PASS

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict:
        return {"schema_version": 2, "kind": "backends", "target": self.target, "weights": self.weights,
                "source": self.source, "ok": self.ok, "exit_code": self.exit_code, "backends": list(self.backends),
                "reports": {name: report for name, report in zip(self.backends, self.reports)},
                "agreement": self.agreement.to_dict(), "failures": self.failures,
                "options": self.options.to_dict(), "seconds": self.seconds}
