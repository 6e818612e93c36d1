"""The whole validation: the four checks in order, one :class:`~archdiff.validate.report.ValidationReport`.

Given a target model (its config), the transferred weights (OUT) and
optionally the source they came from, :func:`validate` answers "did the
transfer work, and does the model now learn?":

1. **rebuild** (:mod:`~archdiff.validate.rebuilding`): the target from its
   config with Keras 3, in safe mode, custom classes from ``imports``; then
   Keras loads OUT into it.
2. **weights arrived** (:mod:`~archdiff.validate.arrival`): every variable of
   every layer the target shares with the source equals, bitwise, the value
   in the source *file*.
3. **outputs** (:mod:`~archdiff.validate.outputs`): the largest sub-graph the
   two models share from their inputs gives the same outputs on the same
   seeded batch.
4. **fine-tune** (:mod:`~archdiff.validate.finetuning`): frozen variables
   unchanged, trainable ones changed, the loss finite and falling; the
   transfer gain over training from scratch on the built-in task.

Before anything imports Keras the backend is chosen (``options.backend``,
through :func:`archdiff.lazy.select_backend`); the report says which backend
and version ran. ``--reference`` adds a check (the outputs against a saved
reference), ``--save-reference`` writes one. A check that cannot run is
*skipped* with its reason, and the exit code is 1 unless
``options.allow_skip`` accepts it (``--no-finetune`` accepts its own skip).
``--backends`` is :mod:`archdiff.validate.backends`, one process per backend.

Errors a user can cause raise :class:`~archdiff.errors.ArchdiffError`
(exit 2); a check that fails is data in the report (exit 1). Nothing here
prints: renderers and the CLI format the report.
"""
from __future__ import annotations

import gc
import math
import time
from typing import Any

from archdiff.errors import UsageError
from archdiff.validate.arrival import check_weights
from archdiff.validate.finetuning import finetune
from archdiff.validate.live import count_params
from archdiff.validate.options import ValidateOptions
from archdiff.validate.outputs import compare_outputs
from archdiff.validate.precision import float32_policy
from archdiff.validate.rebuilding import import_modules, load_weights_into, rebuild
from archdiff.validate.report import PASS, SKIPPED, OutputsCheck, RebuildResult, ValidationReport, WeightsCheck
from archdiff.validate.subgraph import pair_layers


def peak_rss_mb() -> float | None:
    """This process' peak resident memory in MiB (None where the platform does not tell)."""
    try:
        import resource
        import sys
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return round(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024, 1)


def _stage_costs(options: ValidateOptions, source: bool) -> list[tuple[str, float]]:
    """Relative costs of the stages, for the time-left estimate (a rebuild of the model is about 1)."""
    stages = [("rebuild", 1.0)]
    if source:
        stages += [("weights arrived", 0.5), ("outputs", 2.0)]
    if options.reference or options.save_reference:
        stages.append(("reference", 0.5))
    if options.finetune:
        steps = options.epochs * max(1, math.ceil(options.samples / max(1, options.batch_size)))
        if options.unfreeze_lr is not None:
            steps *= 2
        if options.scratch:
            steps *= 2
        stages.append(("fine-tune", 1.0 + steps * options.batch_size / 64.0))
    return stages


def validate(target: str, weights: str | None = None, source: str | None = None,
             options: ValidateOptions | None = None, *, progress: bool | None = None,
             plan=None) -> ValidationReport:
    """Rebuild TARGET, load WEIGHTS (default: TARGET's own), and run the checks against SOURCE.

    ``progress``: None shows a line per stage (with the time left) and the
    fine-tuning's epochs on a terminal only; True/False force it. ``plan``:
    a :class:`~archdiff.validate.devices.DevicePlan` (default: chosen from
    ``options.device``).
    """
    from archdiff.lazy import backend_info, select_backend
    from archdiff.progress import StageProgress
    from archdiff.read import load

    started = time.perf_counter()
    options = options or ValidateOptions()
    if options.backends:
        raise UsageError("validate() runs on one backend; for several use archdiff.validate.backends.validate_on")
    if not options.finetune and not options.skip_allowed("finetune"):
        # Asked for by --no-finetune: its skip is accepted, and the report says it was not run.
        options = options.with_changes(allow_skip=options.allow_skip + ("finetune",))
    # Before anything imports Keras (a --import module may): Keras fixes its backend on first import.
    select_backend(options.backend)
    # A constructor config (keras-hub) is validated as the model Keras builds from it (archdiff.read.build):
    # rebuilding it is what validate does anyway, and the checks need its layers and graph.
    building: dict[str, Any] = {"build": True, "imports": tuple(options.imports)}
    target_arch = load(target, **building)
    weights_path = weights or target
    weights_arch = load(weights_path, infer_shapes=False, **building) if weights else target_arch
    if not weights_arch.has_weights and weights is None:
        raise UsageError(f"'{target}' holds no weights to validate",
                         hint="give the transferred weights with --weights OUT")
    source_arch = load(source, **building) if source else None
    reference = None
    if options.reference:
        from archdiff.validate.reference import load_reference

        reference = load_reference(options.reference)
    stages = StageProgress(_stage_costs(options, source_arch is not None), "archdiff validate",
                           enabled=progress)
    stages.start("rebuild")
    imported = import_modules(options.imports)
    info = backend_info()
    if options.finetune and plan is None:
        from archdiff.validate import devices

        # Chosen first, so that --device gpu on a machine without one fails before any work.
        plan = devices.choose(options.device, mixed_precision=options.mixed_precision, backend=info["backend"])

    from archdiff.lazy import require_keras

    keras = require_keras()
    reference_check = saved = None
    with float32_policy():
        keras.utils.set_random_seed(options.seed)
        model = rebuild(target_arch, unsafe=options.unsafe)
        load_weights_into(model, weights_path)
        rebuild_result = RebuildResult(
            status=PASS, model_name=model.name, class_name=type(model).__name__,
            keras_version=info["keras_version"], layers=len(model.layers), params=count_params(model),
            safe_mode=not options.unsafe, imports=tuple(imported), weights_path=weights_path,
            weights_format=weights_arch.source.format, backend=info["backend"],
            backend_version=info["backend_version"],
            notes=("a Keras 2 config, rebuilt with Keras 3",) if target_arch.source.dialect == "keras2" else ())

        if source_arch is None:
            weights_check = WeightsCheck(status=SKIPPED, reason="no --source: nothing to compare the weights with")
            outputs_check = OutputsCheck(status=SKIPPED, reason="no --source: nothing to compare the outputs with")
            transferred = None
        else:
            stages.start("weights arrived")
            pairs = pair_layers(source_arch, target_arch, maps=options.maps, map_files=options.map_files,
                                match=options.match)
            own = target_arch if (weights and weights_path != target and target_arch.has_weights) else None
            weights_check = check_weights(model, target_arch, source_arch, pairs, target_values=own)
            stages.start("outputs")
            outputs_check = compare_outputs(model, target_arch, source_arch, pairs, tolerances=options.tolerances,
                                            batch=options.compare_batch, seed=options.seed,
                                            unsafe=options.unsafe,
                                            not_transferred={x["layer"]: x["reason"]
                                                             for x in weights_check.not_transferred})
            transferred = weights_check.arrived
        if reference is not None or options.save_reference:
            from archdiff.validate import reference as references

            stages.start("reference")
            if reference is not None:
                reference_check, _ = references.compare_with_reference(model, reference, options.tolerances)
            if options.save_reference:
                references.record_reference(model, options.save_reference, batch=options.compare_batch,
                                            seed=options.seed, meta={"weights": weights_path})
                saved = options.save_reference
    # Fine-tuning builds its own model: let this one go first (a ResNet50 is ~100 MB per copy).
    del model
    gc.collect()
    if options.finetune:
        stages.start("fine-tune")
    finetune_check = finetune(target_arch, weights_path, transferred, options, progress=progress, plan=plan)
    stages.finish()
    return ValidationReport(target=target, weights=weights_path, source=source, rebuild=rebuild_result,
                            weights_arrived=weights_check, outputs=outputs_check, finetune=finetune_check,
                            options=options, seconds=round(time.perf_counter() - started, 3),
                            reference=reference_check, saved_reference=saved, timings=dict(stages.seconds),
                            peak_rss_mb=peak_rss_mb())
