"""``archdiff validate TARGET --weights OUT --source SOURCE``: prove a transfer worked.

Exit codes: 0 every check passed (a skipped one only where --allow-skip
accepts it); 1 a check failed (weights did not arrive, outputs differ, a
frozen variable changed, the loss did not fall, backends disagree ...) or was
skipped without --allow-skip; 2 an error (unreadable input, a Lambda in safe
mode, no GPU for --device gpu, a backend that is not installed).
See docs/validate.md.
"""
from __future__ import annotations

from archdiff.cli.common import emit
from archdiff.errors import UsageError


def _positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"'{text}' must not be negative")
    return value


def _float(text: str) -> float:
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be a finite, non-negative number")
    return value


def register(sub) -> None:
    p = sub.add_parser(
        "validate",
        help="rebuild TARGET with Keras, prove the transferred weights arrived, and fine-tune it",
        description=(
            "Rebuild TARGET from its config (Keras 3, safe mode), load the transferred weights, check them "
            "bitwise against SOURCE, compare the shared sub-graph's outputs, and fine-tune with the transferred "
            "layers frozen (the Keras transfer-learning recipe). Needs TensorFlow. "
            "Exit 0: every check passed; 1: a check failed; 2: error."
        ),
    )
    p.add_argument("target", help="the target model: .keras, full-model .h5, .json or .yaml (its architecture)")
    p.add_argument("--weights", metavar="OUT",
                   help="the transferred weights (.keras, .weights.h5 or .h5; default: TARGET's own weights)")
    p.add_argument("--source", metavar="SOURCE",
                   help="the file the weights came from; enables checks 2 (values arrived) and 3 (outputs)")

    g = p.add_argument_group("rebuilding")
    g.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE first, so that its @register_keras_serializable classes are known; repeatable")
    g.add_argument("--unsafe", action="store_true",
                   help="allow Lambda layers' stored Python code to run (only for files you trust)")

    g = p.add_argument_group("pairing layers (as archdiff transfer does)")
    g.add_argument("--map", dest="maps", action="append", default=[], metavar="OLD=NEW",
                   help="source layer OLD is target layer NEW; 're:PATTERN=REPLACEMENT' for a regex; repeatable")
    g.add_argument("--map-file", dest="map_files", action="append", default=[], metavar="FILE",
                   help="rename rules from a file (as archdiff transfer reads them)")
    g.add_argument("--match", choices=("name", "auto"), default="name",
                   help="name: same path after the rules (default); auto: also the renames the diff detects")

    g = p.add_argument_group("backend and budget")
    g.add_argument("--backend", choices=("tensorflow", "jax", "torch"),
                   help="the Keras 3 backend to run on (default: KERAS_BACKEND, else Keras' own choice); the report "
                        "says which backend and version ran")
    g.add_argument("--backends", metavar="A,B", type=_backends,
                   help="validate on each backend in its own process (e.g. tensorflow,jax) and compare their outputs "
                        "on the same seeded batch")
    g.add_argument("--budget", choices=("quick", "standard", "full"), default="standard",
                   help="quick: a ResNet50-sized port in about a minute on 2 CPU cores (2 epochs of 16 images, batch "
                        "2 compared, no from-scratch baseline); standard (default): 4 epochs of 256; full: 8 epochs "
                        "of 1024, an unfrozen second stage. Options given explicitly win")
    g.add_argument("--allow-skip", dest="allow_skip", action="append", default=[], metavar="CHECK",
                   type=_checks,
                   help="accept that CHECK (rebuild, weights_arrived, outputs, finetune, reference or all; "
                        "comma-separated or repeated) is skipped; otherwise a check that cannot run makes the exit "
                        "code 1")

    g = p.add_argument_group("output comparison (as NVIDIA Polygraphy compares)")
    g.add_argument("--atol", nargs="+", action="extend", default=[], metavar="[OUTPUT:]VALUE",
                   help="absolute tolerance, per output or for all (default 1e-5)")
    g.add_argument("--rtol", nargs="+", action="extend", default=[], metavar="[OUTPUT:]VALUE",
                   help="relative tolerance, per output or for all (default 1e-5)")
    g.add_argument("--check-error-stat", nargs="+", action="extend", default=[], metavar="[OUTPUT:]STAT",
                   help="elementwise (default: an element fails when it exceeds both tolerances), max, mean or "
                        "median (that statistic of the absolute and relative error against the tolerances)")
    g.add_argument("--compare-batch", type=_positive_int, metavar="N",
                   help="size of the seeded batch fed to both models (budget: quick 2, standard 8, full 32)")
    g.add_argument("--save-reference", metavar="REF.npz",
                   help="save the seeded inputs and the model's outputs to REF.npz")
    g.add_argument("--reference", metavar="REF.npz",
                   help="compare the model's outputs with those saved in REF.npz, on its inputs (e.g. recorded "
                        "from the Keras 2 model with archdiff.validate.reference.record_reference)")

    g = p.add_argument_group("fine-tuning")
    g.add_argument("--no-finetune", dest="finetune", action="store_false", help="skip check 4")
    g.add_argument("--freeze-until", metavar="NAME|INDEX",
                   help="freeze model.layers[:INDEX] (the index 'archdiff layers' prints; a NAME is the first layer "
                        "that trains) instead of the transferred layers")
    g.add_argument("--epochs", type=_positive_int, help="epochs of the first stage (budget: 2, 4, 8)")
    g.add_argument("--batch-size", type=_positive_int, help="budget: quick 8, otherwise 32")
    g.add_argument("--learning-rate", type=_float, default=1e-3, help="Adam's learning rate (default 1e-3)")
    g.add_argument("--unfreeze-lr", type=_float, metavar="LR",
                   help="then unfreeze everything (frozen BatchNormalization stays in inference mode) and train "
                        "again at this low learning rate, e.g. 1e-5 (budget full: 1e-5)")
    g.add_argument("--unfreeze-epochs", type=_positive_int, metavar="N",
                   help="epochs of that second stage (default: --epochs)")
    g.add_argument("--loss", action="append", default=[], metavar="[OUTPUT:]NAME",
                   help="the loss of an output (or of all): binary_crossentropy[_from_logits], "
                        "sparse_categorical_crossentropy[_from_logits], mse, mae; default: chosen from the output "
                        "layer (one linear unit: binary cross-entropy from logits, as the Keras guide)")
    g.add_argument("--data", metavar="DIR|FILE.npz",
                   help="a folder with a sub-folder of images per class, or an .npz with arrays x and y (or arrays "
                        "named after the model's inputs and outputs; optional *_val); default: the built-in "
                        "synthetic task, or seeded random data for models it does not fit")
    g.add_argument("--rescale", type=_float, metavar="FACTOR",
                   help="multiply --data DIR pixels by FACTOR (default 1/255)")
    g.add_argument("--samples", type=_positive_int,
                   help="training samples of the built-in or random task (budget: 16, 256, 1024)")
    g.add_argument("--test-samples", type=_positive_int,
                   help="held-out samples of the built-in or random task (budget: 16, 512, 1024)")
    g.add_argument("--no-scratch", dest="scratch", action="store_const", const=False, default=None,
                   help="built-in task: skip the from-scratch baseline (budget quick: skipped)")
    g.add_argument("--seed", type=int, default=0, help="seed for data, initialization and the compared batch")
    g.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                   help="auto: a GPU when the backend sees one (several: MirroredStrategy on TensorFlow, "
                        "MultiWorkerMirroredStrategy when TF_CONFIG describes a cluster; keras.distribution."
                        "DataParallel on JAX; one device on PyTorch), else the CPU")
    g.add_argument("--mixed-precision", action="store_true",
                   help="train in mixed_float16 (on a GPU of compute capability 7.0 or more)")

    p.add_argument("--format", choices=("text", "json", "markdown"), default="text",
                   help="report format (json schema: archdiff/schemas/validate.schema.json)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE instead of stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr, even on a terminal")
    p.set_defaults(run=run_validate)


def _backends(text: str) -> tuple[str, ...]:
    import argparse

    from archdiff.errors import ArchdiffError
    from archdiff.validate.backends import parse_backends

    try:
        return parse_backends(text)
    except ArchdiffError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _checks(text: str) -> tuple[str, ...]:
    import argparse

    from archdiff.validate.options import CHECKS, OPTIONAL_CHECKS

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    known = CHECKS + OPTIONAL_CHECKS + ("all",)
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"'{text}': checks are {', '.join(known)}")
    return names


def options_from(args):
    from archdiff.validate import ValidateOptions
    from archdiff.validate.comparator import error_stat, parse_per_output, tolerance
    from archdiff.validate.heads import check_loss_name

    if args.unfreeze_epochs is not None and args.unfreeze_lr is None and args.budget != "full":
        raise UsageError("--unfreeze-epochs needs --unfreeze-lr", hint="for example --unfreeze-lr 1e-5")
    if args.rescale is not None and (args.data is None or str(args.data).lower().endswith(".npz")):
        raise UsageError("--rescale applies to --data DIR only")
    if args.backend and args.backends:
        raise UsageError("give --backend NAME or --backends A,B, not both")
    atol = parse_per_output(args.atol, "--atol", tolerance)
    rtol = parse_per_output(args.rtol, "--rtol", tolerance)
    stats = parse_per_output(args.check_error_stat, "--check-error-stat", error_stat)
    losses = parse_per_output(args.loss, "--loss", check_loss_name)

    def default(table, fallback):
        values = [v for k, v in table if k == ""]
        return values[-1] if values else fallback

    return ValidateOptions.for_budget(
        args.budget,
        imports=tuple(args.imports), unsafe=args.unsafe, maps=tuple(args.maps), map_files=tuple(args.map_files),
        match=args.match, atol=default(atol, 1e-5), rtol=default(rtol, 1e-5),
        check_error_stat=default(stats, "elementwise"), output_atol=tuple((k, v) for k, v in atol if k),
        output_rtol=tuple((k, v) for k, v in rtol if k), output_error_stat=tuple((k, v) for k, v in stats if k),
        compare_batch=max(1, args.compare_batch) if args.compare_batch is not None else None,
        reference=args.reference, save_reference=args.save_reference,
        finetune=args.finetune, freeze_until=args.freeze_until, epochs=args.epochs,
        batch_size=max(1, args.batch_size) if args.batch_size is not None else None,
        learning_rate=args.learning_rate, unfreeze_lr=args.unfreeze_lr, unfreeze_epochs=args.unfreeze_epochs,
        data=args.data, rescale=args.rescale, loss=losses,
        samples=max(8, args.samples) if args.samples is not None else None,
        test_samples=max(8, args.test_samples) if args.test_samples is not None else None, seed=args.seed,
        device=args.device, mixed_precision=args.mixed_precision, scratch=args.scratch, backend=args.backend,
        backends=tuple(args.backends or ()), allow_skip=tuple(n for group in args.allow_skip for n in group),
    )


def run_validate(args) -> int:
    from archdiff.lazy import quiet_frameworks
    from archdiff.output import refuse_overwriting_inputs, write_text

    options = options_from(args)
    inputs = [p for p in (args.target, args.weights, args.source, args.reference) if p]
    if args.output:
        refuse_overwriting_inputs(args.output, inputs)
    if args.save_reference:
        refuse_overwriting_inputs(args.save_reference, inputs)
    progress = False if args.no_progress else None
    # TensorFlow, absl and Keras print start-up and warning lines: kept out of the report and the error line,
    # shown with --debug (archdiff.lazy.quiet_frameworks).
    with quiet_frameworks(show=getattr(args, "debug", False)):
        if options.backends:
            from archdiff.validate.backends import validate_on
            from archdiff.validate.render import render_backends

            multi = validate_on(args.target, args.weights, args.source, options, fmt=args.format,
                                progress=progress)
            text = render_backends(multi, args.format)
            code = multi.exit_code
        else:
            from archdiff.validate import validate
            from archdiff.validate.render import render

            # None: the stage lines and the epoch bar show on a terminal only (and not with ARCHDIFF_NO_PROGRESS).
            report = validate(args.target, args.weights, args.source, options, progress=progress)
            text = render(report, args.format)
            code = report.exit_code
    if args.output:
        write_text(args.output, text)
    else:
        emit(text)
    return code
