"""``archdiff validate TARGET --weights OUT --source SOURCE``: prove a transfer worked.

Exit codes: 0 every check that ran passed; 1 a check failed (weights did not
arrive, outputs differ, a frozen variable changed, the loss did not fall ...);
2 an error (unreadable input, a Lambda in safe mode, no GPU for --device gpu).
See docs/validate.md.
"""
from __future__ import annotations

from archdiff.errors import UsageError
from archdiff.cli.common import emit


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

    g = p.add_argument_group("output comparison")
    g.add_argument("--atol", type=_float, default=1e-5, help="absolute tolerance (default 1e-5)")
    g.add_argument("--rtol", type=_float, default=1e-5, help="relative tolerance (default 1e-5)")
    g.add_argument("--compare-batch", type=_positive_int, default=8, metavar="N",
                   help="size of the seeded batch fed to both models (default 8)")

    g = p.add_argument_group("fine-tuning")
    g.add_argument("--no-finetune", dest="finetune", action="store_false", help="skip check 4")
    g.add_argument("--freeze-until", metavar="NAME|INDEX",
                   help="freeze model.layers[:INDEX] (the index 'archdiff layers' prints; a NAME is the first layer "
                        "that trains) instead of the transferred layers")
    g.add_argument("--epochs", type=_positive_int, default=4, help="epochs of the first stage (default 4)")
    g.add_argument("--batch-size", type=_positive_int, default=32, help="default 32")
    g.add_argument("--learning-rate", type=_float, default=1e-3, help="Adam's learning rate (default 1e-3)")
    g.add_argument("--unfreeze-lr", type=_float, metavar="LR",
                   help="then unfreeze everything (frozen BatchNormalization stays in inference mode) and train "
                        "again at this low learning rate, e.g. 1e-5")
    g.add_argument("--unfreeze-epochs", type=_positive_int, metavar="N",
                   help="epochs of that second stage (default: --epochs)")
    g.add_argument("--data", metavar="DIR|FILE.npz",
                   help="a folder with a sub-folder of images per class, or an .npz with arrays x and y "
                        "(optional x_val, y_val); default: the built-in synthetic task")
    g.add_argument("--rescale", type=_float, metavar="FACTOR",
                   help="multiply --data DIR pixels by FACTOR (default 1/255)")
    g.add_argument("--samples", type=_positive_int, default=256,
                   help="training images of the built-in task (default 256)")
    g.add_argument("--test-samples", type=_positive_int, default=512,
                   help="held-out images of the built-in task (default 512)")
    g.add_argument("--no-scratch", dest="scratch", action="store_false",
                   help="built-in task: skip the from-scratch baseline")
    g.add_argument("--seed", type=int, default=0, help="seed for data, initialization and the compared batch")
    g.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                   help="auto: a GPU when TensorFlow sees one (MirroredStrategy for several; "
                        "MultiWorkerMirroredStrategy when TF_CONFIG describes a cluster), else the CPU")
    g.add_argument("--mixed-precision", action="store_true", help="train in mixed_float16 (GPU only)")

    p.add_argument("--format", choices=("text", "json", "markdown"), default="text",
                   help="report format (json schema: archdiff/schemas/validate.schema.json)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE instead of stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr, even on a terminal")
    p.set_defaults(run=run_validate)


def options_from(args):
    from archdiff.validate import ValidateOptions

    if args.unfreeze_epochs is not None and args.unfreeze_lr is None:
        raise UsageError("--unfreeze-epochs needs --unfreeze-lr", hint="for example --unfreeze-lr 1e-5")
    if args.rescale is not None and (args.data is None or str(args.data).lower().endswith(".npz")):
        raise UsageError("--rescale applies to --data DIR only")
    return ValidateOptions(
        imports=tuple(args.imports), unsafe=args.unsafe, maps=tuple(args.maps), map_files=tuple(args.map_files),
        match=args.match, atol=args.atol, rtol=args.rtol, compare_batch=max(1, args.compare_batch),
        finetune=args.finetune, freeze_until=args.freeze_until, epochs=args.epochs,
        batch_size=max(1, args.batch_size), learning_rate=args.learning_rate, unfreeze_lr=args.unfreeze_lr,
        unfreeze_epochs=args.unfreeze_epochs, data=args.data, rescale=args.rescale,
        samples=max(8, args.samples), test_samples=max(8, args.test_samples), seed=args.seed, device=args.device,
        mixed_precision=args.mixed_precision, scratch=args.scratch,
    )


def run_validate(args) -> int:
    from archdiff.lazy import quiet_frameworks
    from archdiff.output import refuse_overwriting_inputs, write_text
    from archdiff.validate import validate
    from archdiff.validate.render import render

    options = options_from(args)
    if args.output:
        refuse_overwriting_inputs(args.output, [p for p in (args.target, args.weights, args.source) if p])
    # None: the epoch bar shows on a terminal only (and not with ARCHDIFF_NO_PROGRESS), as transfer's does.
    # TensorFlow, absl and Keras print start-up and warning lines: kept out of the report and the error line,
    # shown with --debug (archdiff.lazy.quiet_frameworks).
    with quiet_frameworks(show=getattr(args, "debug", False)):
        report = validate(args.target, args.weights, args.source, options,
                          progress=False if args.no_progress else None)
    text = render(report, args.format)
    if args.output:
        write_text(args.output, text)
    else:
        emit(text)
    return report.exit_code
