"""Check 4, fine-tuning, as in the Keras transfer-learning guide: freeze, train, check; unfreeze; from scratch.

The transferred layers are frozen (or ``model.layers[:INDEX]`` with
``--freeze-until``); the model is recompiled after every change of
``trainable`` and trained a few epochs. Frozen variables must stay bitwise
unchanged, every trainable one must change, the loss must be finite and
(in stage 1) falling. With ``--unfreeze-lr`` a second stage unfreezes
everything but the frozen BatchNormalization layers (Keras 3 runs a frozen
BatchNormalization in inference mode, so its moving statistics stay as
transferred) and trains at that low rate. On the built-in task the same
target is also trained from scratch with the same budget: the transfer gain.

Every model is built, compiled and trained inside the scope of what
:mod:`archdiff.validate.devices` chose for the backend (a ``tf.distribute``
strategy, a ``keras.distribution``, a ``keras.device``). Each output is
trained with the loss :mod:`archdiff.validate.heads` chose for it. Progress
goes to :class:`archdiff.progress.Progress`; what the check found is
returned as a :class:`~archdiff.validate.report.FinetuneCheck`. Named
``finetuning`` rather than ``finetune`` so that the package's ``finetune``
function does not shadow the module.
"""
from __future__ import annotations

import difflib
import math

import numpy as np

from archdiff.errors import UsageError
from archdiff.model import Architecture
from archdiff.validate.data import Data, Skip, load_data, model_io, steps_per_epoch
from archdiff.validate.heads import keras_loss, keras_metric, metric_name
from archdiff.validate.live import is_model, live_layers, relative_name
from archdiff.validate.options import ValidateOptions
from archdiff.validate.precision import mixed_precision_config, optimizer
from archdiff.validate.rebuilding import load_weights_into, rebuild
from archdiff.validate.report import FAIL, PASS, SKIPPED, FinetuneCheck, ScratchResult, StageResult, listed

STAGE_1 = "stage 1"
STAGE_2 = "stage 2 (unfrozen)"
#: How many variable names a failure lists before it counts the rest.
NAMED_IN_FAILURE = 8


def finetune(target: Architecture, weights_path: str, transferred: list[str] | None, options: ValidateOptions,
             *, progress: bool | None = False, plan=None) -> FinetuneCheck:
    """Step 4: freeze, train, check; then optionally unfreeze; and train from scratch on the built-in task.

    ``transferred``: the target layers whose weights arrived (check 2), frozen
    unless ``options.freeze_until`` says otherwise. ``plan``: a
    :class:`~archdiff.validate.devices.DevicePlan` (default: chosen from
    ``options.device``). ``progress``: None shows a bar on a terminal only.
    """
    from archdiff.lazy import require_keras
    from archdiff.validate import devices

    keras = require_keras()
    if not options.finetune:
        return FinetuneCheck(status=SKIPPED, reason="fine-tuning was not asked for (--no-finetune)")
    if options.epochs < 1:
        raise UsageError(f"--epochs {options.epochs}: train at least one epoch")
    plan = plan or devices.choose(options.device, mixed_precision=options.mixed_precision)
    strategy = devices.make_strategy(plan)
    plan = devices.with_strategy_name(plan, strategy)
    device = plan.to_dict()
    serialized = dict(target.config)
    if plan.mixed_precision:
        serialized = mixed_precision_config(serialized)

    def build(load: bool):
        # Inside the scope: the strategy owns (places, mirrors) every variable the model creates.
        with strategy.scope():
            m = rebuild(target, unsafe=options.unsafe, serialized=serialized)
            if load:
                load_weights_into(m, weights_path)
        return m

    def make_optimizer(learning_rate: float):
        return optimizer(learning_rate, mixed_precision=plan.mixed_precision)

    keras.utils.set_random_seed(options.seed)
    model = build(True)
    try:
        from archdiff.validate.outputs import sequence_limit

        data, heads = load_data(options, model_io(model, fill=min(16, sequence_limit(target) or 16)), target)
    except Skip as why:
        return FinetuneCheck(status=SKIPPED, reason=str(why), device=device)
    loss = _losses(keras, heads)
    loss_name = "; ".join((f"{h.name}: " if len(heads) > 1 else "") + h.loss_label for h in heads)
    metric = metric_name(heads)

    def metrics():
        # Fresh metric objects for every compile: they hold state.
        made = [[keras_metric(keras, h)] for h in heads]
        return made[0] if len(made) == 1 else made

    path_of = _all_layer_paths(model)
    notes: list[str] = []
    if data.kind == "tokens":
        notes.append(f"no --data: a synthetic next-token task for this language model (each sequence counts up by "
                     f"one modulo its vocabulary of {data.description.get('vocabulary')}; the target is the next "
                     "token): a rule the model can learn, which proves the mechanics and that the trainable layers "
                     "learn, not that the transfer helps; give --data FILE.npz for a real task")
    if data.kind == "random":
        notes.append("no --data and the built-in image task does not fit this model "
                     f"({data.description.get('why')}): seeded random inputs and targets, which prove the mechanics "
                     "(frozen variables stay, trainable ones move, the loss falls as the model fits them), not that "
                     "the transfer helps; give --data FILE.npz for a real task")

    # -- what is frozen ------------------------------------------------------------
    freeze, frozen_paths = _what_to_freeze(model, options, transferred, path_of)
    if freeze["mode"] == "none":
        notes.append("no transferred layers are known (no --source) and no --freeze-until: nothing frozen")
    live = live_layers(model)
    for path in frozen_paths:
        if path in live:
            live[path].trainable = False
    frozen_with_weights = sorted(p for p in frozen_paths if p in live and live[p].weights and not is_model(live[p]))
    bn_frozen = [p for p in frozen_with_weights if type(live[p]).__name__.startswith("BatchNormalization")]
    freeze = {**freeze, "layers": listed(frozen_with_weights), "layer_count": len(frozen_with_weights)}
    if bn_frozen:
        notes.append(f"{len(bn_frozen)} frozen BatchNormalization layer(s) run in inference mode "
                     "(Keras 3: trainable=False also means training=False), so their moving statistics "
                     "stay as transferred")
    trainable_paths = sorted(p for p, x in live.items() if x.weights and not is_model(x) and p not in frozen_paths
                             and x.trainable)

    # -- the stages -----------------------------------------------------------------
    n_steps = steps_per_epoch(data, options.batch_size)
    stages: list[StageResult] = []
    with strategy.scope():
        stages.append(_train_stage(model, STAGE_1, options.epochs, options.learning_rate, trainable_paths,
                                   frozen_with_weights, data, options, make_optimizer(options.learning_rate), loss,
                                   metrics, frozen_paths, path_of, progress, options.seed))
        if options.unfreeze_lr is not None:
            keep_frozen = set(bn_frozen)
            for path, layer in live.items():
                if path not in keep_frozen:
                    layer.trainable = True
            epochs2 = options.unfreeze_epochs if options.unfreeze_epochs is not None else options.epochs
            if epochs2 > 0:
                unfrozen = sorted(p for p, x in live.items() if x.weights and not is_model(x) and p not in keep_frozen)
                stages.append(_train_stage(model, STAGE_2, epochs2, options.unfreeze_lr, unfrozen, sorted(keep_frozen),
                                           data, options, make_optimizer(options.unfreeze_lr), loss, metrics,
                                           keep_frozen, path_of, progress, options.seed + 1))
                if keep_frozen:
                    notes.append("stage 2 keeps the frozen BatchNormalization layers frozen, in inference "
                                 "mode, as the Keras transfer-learning guide advises")
    failures = tuple(f for stage in stages for f in stage.failures)
    for stage in stages:
        if stage.loss_independent:
            notes.append(f"{stage.name}: {len(stage.loss_independent)} trainable variable(s) did not move because "
                         f"the loss does not depend on them (a seeded perturbation leaves it unchanged; an "
                         f"attention layer's key bias, which the softmax ignores): {_some(stage.loss_independent)}")

    # -- from scratch, same budget (built-in task) ---------------------------------
    scratch = gain = None
    if data.builtin and options.scratch:
        keras.utils.set_random_seed(options.seed)
        scratch = _from_scratch(build(False), strategy, sum(s.epochs for s in stages), data, options,
                                make_optimizer, loss, metrics, progress)
        if stages[-1].metric_after is not None and scratch.metric_after is not None:
            gain = round(stages[-1].metric_after - scratch.metric_after, 6)
    if failures:
        status, reason = FAIL, f"{len(failures)} fine-tuning check(s) failed"
    else:
        status = PASS
        reason = (f"frozen variables unchanged, trainable ones changed, loss finite and falling; "
                  f"{metric} {stages[0].metric_before:.3f} -> {stages[-1].metric_after:.3f}")
    return FinetuneCheck(status=status, reason=reason, data={**data.description, "steps_per_epoch": n_steps},
                         device=device, freeze=freeze, loss_name=loss_name, metric=metric,
                         losses={h.name: h.to_dict() for h in heads}, stages=tuple(stages), scratch=scratch,
                         transfer_gain=gain, failures=failures, notes=tuple(notes))


def _what_to_freeze(model, options: ValidateOptions, transferred, path_of: dict[int, str]) -> tuple[dict, set[str]]:
    """How the report describes the freezing, and the paths of the layers to freeze."""
    if options.freeze_until is not None:
        index = resolve_freeze_until(model, options.freeze_until)
        frozen: set[str] = set()
        for layer in model.layers[:index]:
            frozen.add(path_of[id(layer)])
            if is_model(layer):
                frozen.update(live_layers(layer, path_of[id(layer)] + "/"))
        return ({"mode": "until", "until": options.freeze_until, "index": index,
                 "first_trainable": model.layers[index].name if index < len(model.layers) else None}, frozen)
    if transferred:
        return {"mode": "transferred", "until": None, "index": None, "first_trainable": None}, set(transferred)
    return {"mode": "none", "until": None, "index": None, "first_trainable": None}, set()


def resolve_freeze_until(model, spec: str) -> int:
    """``--freeze-until NAME|INDEX`` to the index in ``model.layers`` (the ``archdiff layers`` index)."""
    names = [layer.name for layer in model.layers]
    text = spec.strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index <= len(names):
            raise UsageError(f"--freeze-until {index} is out of range: the model has layers 0..{len(names) - 1}",
                             hint="see the indices with 'archdiff layers TARGET'")
        return index
    if text in names:
        return names.index(text)
    close = difflib.get_close_matches(text, names, n=3)
    raise UsageError(f"--freeze-until '{text}': no top-level layer has this name",
                     hint=(f"did you mean {', '.join(repr(c) for c in close)}? " if close else "")
                     + "see the names and indices with 'archdiff layers TARGET'")


def _losses(keras, heads):
    """One Keras loss per output, in the model's order (a single one for a one-output model)."""
    made = [keras_loss(keras, h) for h in heads]
    return made[0] if len(made) == 1 else made


# -- one stage of training -------------------------------------------------------------------
def _snapshot(model) -> dict[int, tuple[str, np.ndarray]]:
    return {id(v): (v.path, np.array(v.numpy(), copy=True)) for v in model.weights}


def _frozen_layers(model, paths: set[str]) -> list:
    live = live_layers(model)
    return [live[p] for p in sorted(paths) if p in live]


def _all_layer_paths(model) -> dict[int, str]:
    return {id(layer): path for path, layer in live_layers(model).items()}


def _history_losses(history) -> tuple[float, ...]:
    return tuple(float(v) for v in (history.history.get("loss") or []))


def _evaluate(model, data: Data, batch_size: int) -> tuple[float, float]:
    if data.batched:
        values = model.evaluate(data.val, verbose=0, return_dict=True)
    else:
        x, y = data.val
        values = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    loss = float(values.get("loss", float("nan")))
    metric = next((float(v) for k, v in values.items() if k.endswith("accuracy")),
                  next((float(v) for k, v in values.items() if k.endswith("mae")), float("nan")))
    return loss, metric


def _fit(model, data: Data, epochs: int, batch_size: int, callbacks, seed: int):
    from archdiff.lazy import require_keras

    keras = require_keras()
    keras.utils.set_random_seed(seed)
    if data.batched:
        return model.fit(data.train, epochs=epochs, verbose=0, callbacks=callbacks)
    x, y = data.train
    return model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=callbacks, shuffle=True)


def _callbacks(times, label: str, epochs: int, progress: bool | None) -> list:
    """The step timer, and an epoch bar on the terminal (through :class:`archdiff.progress.Progress`)."""
    from archdiff.lazy import require_keras
    from archdiff.progress import Progress
    from archdiff.validate.devices import step_timer

    callbacks = [step_timer(times)]
    bar = Progress(epochs, f"archdiff validate: {label}", unit="epochs", enabled=progress)
    if not bar.enabled:
        return callbacks
    keras = require_keras()

    class EpochProgress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("loss")
            bar.advance(1, detail=f"loss {loss:.4f}" if isinstance(loss, (int, float)) else "")

        def on_train_end(self, logs=None):
            bar.close()

    return callbacks + [EpochProgress()]


def _train_stage(model, name: str, epochs: int, learning_rate: float, trainable_layers, frozen_layers, data: Data,
                 options: ValidateOptions, stage_optimizer, loss, metrics, frozen_paths: set[str],
                 path_of: dict[int, str], progress: bool | None, seed: int) -> StageResult:
    """Compile, record, fit, and check one stage: frozen unchanged, trainable changed, loss finite and falling."""
    from archdiff.validate.devices import StepTimes

    model.compile(optimizer=stage_optimizer, loss=loss, metrics=metrics())  # after every change of trainable
    loss_before, metric_before = _evaluate(model, data, options.batch_size)
    before = _snapshot(model)
    frozen_vars = {}
    for layer in _frozen_layers(model, frozen_paths):
        for var in layer.weights:
            frozen_vars[id(var)] = f"{path_of.get(id(layer), layer.name)}/{relative_name(var, layer)}"
    trainable_vars = {id(v): v.path for v in model.trainable_weights if id(v) not in frozen_vars}
    times = StepTimes()
    history = _fit(model, data, epochs, options.batch_size, _callbacks(times, name, epochs, progress), seed)
    losses = _history_losses(history)
    val_loss_after, metric_after = _evaluate(model, data, options.batch_size)
    after = {id(v): v for v in model.weights}

    def changed(key) -> bool | None:
        var = after.get(key)
        return None if var is None else np.asarray(var.numpy()).tobytes() != before[key][1].tobytes()

    frozen_changed = tuple(n for key, n in frozen_vars.items() if changed(key) is True)
    unchanged = [key for key in trainable_vars if changed(key) is False]
    ignored = loss_independent(model, data, [after[key] for key in unchanged], seed) if unchanged else set()
    trainable_unchanged = tuple(trainable_vars[key] for key in unchanged if key not in ignored)
    independent = tuple(trainable_vars[key] for key in unchanged if key in ignored)
    loss_finite = bool(losses) and all(math.isfinite(v) for v in losses)
    # With one epoch there is no trend to judge: loss_falling stays None (not checked).
    loss_falling = losses[-1] < losses[0] if len(losses) >= 2 else None
    failures = []
    if frozen_changed:
        failures.append(f"{name}: frozen variable(s) changed during training: {_some(frozen_changed)}")
    if not trainable_vars:
        failures.append(f"{name}: nothing is trainable: every layer with weights is frozen "
                        "(choose fewer with --freeze-until)")
    elif trainable_unchanged:
        failures.append(f"{name}: trainable variable(s) did not change: {_some(trainable_unchanged)} "
                        "(no gradient reaches them)")
    if not loss_finite:
        failures.append(f"{name}: the training loss is not finite: {list(losses)}")
    elif loss_falling is False and name == STAGE_1:
        failures.append(f"{name}: the training loss did not fall "
                        f"({losses[0]:.4g} in the first epoch, {losses[-1]:.4g} in the last)")
    return StageResult(name=name, epochs=epochs, steps=len(times.seconds), learning_rate=learning_rate,
                       trainable_layers=tuple(trainable_layers), frozen_layers=tuple(frozen_layers), loss=losses,
                       loss_before=loss_before, metric_before=metric_before, metric_after=metric_after,
                       val_loss_after=val_loss_after, time_per_step_ms=times.per_step_ms(),
                       frozen_variables=len(frozen_vars), trainable_variables=len(trainable_vars),
                       frozen_changed=frozen_changed, trainable_unchanged=trainable_unchanged,
                       loss_independent=independent,
                       loss_finite=loss_finite, loss_falling=loss_falling, failures=tuple(failures))


#: How far a perturbation of a variable may move the loss, relative, for the loss not to depend on it.
INDEPENDENT_RTOL = 1e-5


def loss_independent(model, data: Data, variables: list, seed: int) -> set[int]:
    """``id`` of each variable the training loss does not depend on: a seeded perturbation of it (normal,
    0.5 times its spread, at least 0.5) leaves the loss on a training batch unchanged within
    :data:`INDEPENDENT_RTOL`. Such a variable cannot move in any training (an attention layer's key bias: the
    softmax is invariant to it), so its not moving says nothing about the port. Measured, not assumed: a
    variable the loss depends on, even a little, is not in the set."""
    if data.batched or not variables:
        return set()
    x, y = data.train

    def first(v):
        return {k: a[:8] for k, a in v.items()} if isinstance(v, dict) else v[:8]

    x, y = first(x), first(y)

    def loss() -> float:
        return float(model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True).get("loss", float("nan")))

    base = loss()
    if not math.isfinite(base):
        return set()
    rng = np.random.default_rng([seed, 707])
    found = set()
    for var in variables:
        value = np.asarray(var.numpy())
        scale = max(0.5, 0.5 * float(np.std(value))) if value.size else 0.5
        try:
            var.assign((value + rng.normal(0.0, scale, value.shape)).astype(value.dtype))
            moved = loss()
        finally:
            var.assign(value)
        if math.isfinite(moved) and abs(moved - base) <= INDEPENDENT_RTOL * max(abs(base), 1e-12):
            found.add(id(var))
    return found


def _some(names) -> str:
    more = len(names) - NAMED_IN_FAILURE
    return ", ".join(names[:NAMED_IN_FAILURE]) + (f" and {more} more" if more > 0 else "")


def _from_scratch(model, strategy, epochs: int, data: Data, options: ValidateOptions, make_optimizer, loss, metrics,
                  progress: bool | None) -> ScratchResult:
    """The same target from its initial values, trained as long as the stages together: the baseline."""
    from archdiff.validate.devices import StepTimes

    with strategy.scope():
        # The optimizer's variables (its step count, its slots) belong to the strategy too.
        model.compile(optimizer=make_optimizer(options.learning_rate), loss=loss, metrics=metrics())
        times = StepTimes()
        history = _fit(model, data, epochs, options.batch_size, _callbacks(times, "from scratch", epochs, progress),
                       options.seed)
        _, metric = _evaluate(model, data, options.batch_size)
    return ScratchResult(epochs=epochs, steps=len(times.seconds), learning_rate=options.learning_rate,
                         loss=_history_losses(history), metric_after=metric, time_per_step_ms=times.per_step_ms())
