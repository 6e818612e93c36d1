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

Errors a user can cause raise :class:`~archdiff.errors.ArchdiffError`
(exit 2); a check that fails is data in the report (exit 1). Nothing here
prints: renderers and the CLI format the report.
"""
from __future__ import annotations

import time

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


def validate(target: str, weights: str | None = None, source: str | None = None,
             options: ValidateOptions | None = None, *, progress: bool | None = None,
             plan=None) -> ValidationReport:
    """Rebuild TARGET, load WEIGHTS (default: TARGET's own), and run the checks against SOURCE.

    ``progress``: None shows the fine-tuning's epochs on a terminal only;
    True/False force it. ``plan``: a :class:`~archdiff.validate.devices.DevicePlan`
    (default: chosen from ``options.device``).
    """
    from archdiff.lazy import require_keras
    from archdiff.read import load

    started = time.perf_counter()
    options = options or ValidateOptions()
    target_arch = load(target)
    weights_path = weights or target
    weights_arch = load(weights_path, infer_shapes=False) if weights else target_arch
    if not weights_arch.has_weights and weights is None:
        raise UsageError(f"'{target}' holds no weights to validate",
                         hint="give the transferred weights with --weights OUT")
    source_arch = load(source) if source else None
    imported = import_modules(options.imports)
    if options.finetune and plan is None:
        from archdiff.validate import devices

        # Chosen first, so that --device gpu on a machine without one fails before any work.
        plan = devices.choose(options.device, mixed_precision=options.mixed_precision)

    keras = require_keras()
    with float32_policy():
        keras.utils.set_random_seed(options.seed)
        model = rebuild(target_arch, unsafe=options.unsafe)
        load_weights_into(model, weights_path)
        rebuild_result = RebuildResult(
            status=PASS, model_name=model.name, class_name=type(model).__name__,
            keras_version=getattr(keras, "__version__", ""), layers=len(model.layers), params=count_params(model),
            safe_mode=not options.unsafe, imports=tuple(imported), weights_path=weights_path,
            weights_format=weights_arch.source.format,
            notes=("a Keras 2 config, rebuilt with Keras 3",) if target_arch.source.dialect == "keras2" else ())

        if source_arch is None:
            weights_check = WeightsCheck(status=SKIPPED, reason="no --source: nothing to compare the weights with")
            outputs_check = OutputsCheck(status=SKIPPED, reason="no --source: nothing to compare the outputs with")
            transferred = None
        else:
            pairs = pair_layers(source_arch, target_arch, maps=options.maps, map_files=options.map_files,
                                match=options.match)
            own = target_arch if (weights and weights_path != target and target_arch.has_weights) else None
            weights_check = check_weights(model, target_arch, source_arch, pairs, target_values=own)
            outputs_check = compare_outputs(model, target_arch, source_arch, pairs, atol=options.atol,
                                            rtol=options.rtol, batch=options.compare_batch, seed=options.seed,
                                            unsafe=options.unsafe,
                                            not_transferred={x["layer"]: x["reason"]
                                                             for x in weights_check.not_transferred})
            transferred = weights_check.arrived
    finetune_check = finetune(target_arch, weights_path, transferred, options, progress=progress, plan=plan)
    return ValidationReport(target=target, weights=weights_path, source=source, rebuild=rebuild_result,
                            weights_arrived=weights_check, outputs=outputs_check, finetune=finetune_check,
                            options=options, seconds=round(time.perf_counter() - started, 3))
