"""Port a Keras 2 ``.h5`` into a changed Keras 3 model with archdiff's Python API, and freeze up to a layer.

    python examples/port_keras2_to_keras3.py OLD.h5 NEW.keras OUT.keras [--freeze-until NAME|INDEX] [--match auto]

``OLD.h5`` is the pretrained file (``model.save("old.h5")`` in tf-keras / Keras 2,
a full model or ``save_weights``); ``NEW.keras`` is the model you have now in
Keras 3, saved right after building it (a new head, another input size, an
extra block, the old model nested inside a new one). The script:

1. plans the transfer by layer name, reading metadata only (no tensor, no
   TensorFlow), and prints the plan in the conditional ("would copy");
2. stops unless the plan does what was asked (``plan.exit_code == 0``: a new
   head keeping its own weights is fine; 1 is a refusal on coverage, 2 an
   error), the exit code scripts under ``set -e`` can rely on;
3. writes the ported model, every copied variable read back and verified;
4. with ``--freeze-until``, writes OUT as a copy whose config freezes
   ``model.layers[:INDEX]`` (a layer inside a nested model works too), and
   prints the split and the code that does the same in Keras.

Then ``keras.models.load_model("OUT.keras")`` is the new model with the old
weights, frozen as printed, ready to compile and train. Everything here runs
without TensorFlow; ``tests/test_port_example.py`` runs it and checks the result
in Keras.
"""
from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", help="the pretrained Keras 2 file (.h5)")
    parser.add_argument("new", help="the changed Keras 3 model (.keras)")
    parser.add_argument("out", help="the ported model to write (.keras)")
    parser.add_argument("--freeze-until", metavar="NAME|INDEX", help="freeze the layers before this one")
    parser.add_argument("--match", choices=("name", "auto"), default="name",
                        help="auto: also renamed layers and a model nested in the other")
    args = parser.parse_args(argv)

    import archdiff
    from archdiff.errors import ArchdiffError
    from archdiff.transfer import TransferError, TransferOptions, apply_transfer, dry_run, plan_transfer
    from archdiff.transfer.render import render
    from archdiff.views.freeze import plan_freeze, render_freeze_text, write_frozen

    try:
        # 1. The plan: which layer takes which weights, checked, nothing read but metadata.
        plan = plan_transfer(args.old, args.new, TransferOptions(match=args.match, skip_mismatch=True))
        print(render(dry_run(plan, args.out), "text"))

        # 2. Only a plan that does what was asked is carried out.
        if plan.exit_code != 0:
            print(f"not ported (exit {plan.exit_code}): {plan.refusal or '; '.join(plan.problems)}",
                  file=sys.stderr)
            return plan.exit_code

        # 3. Write it; without freezing, straight to OUT.
        ported = args.out if not args.freeze_until else _beside(args.out, ".ported.keras")
        report = apply_transfer(plan, ported, progress=False)
        t = report.plan.totals
        print(f"ported: {t.copied_params:,} params into {t.copied_layers} of {t.target_layers} layers "
              f"({t.kept_layers} kept their own weights); every copied variable verified in {ported}")

        # 4. Freeze up to a layer: a copy of the ported file whose config says so, and the code.
        if args.freeze_until:
            model = archdiff.load(ported)
            freeze = plan_freeze(model, args.freeze_until)
            try:
                write_frozen(model, freeze, args.out)
            finally:
                os.unlink(ported)
            print()
            print(render_freeze_text(freeze, ("keras",), path=args.out), end="")
            print(f"\nwrote {args.out}: {len(freeze.frozen)} layers with weights frozen, "
                  f"{len(freeze.trainable)} trainable")
    except TransferError as exc:
        print(f"not ported: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except ArchdiffError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    return 0


def _beside(path: str, suffix: str) -> str:
    folder, name = os.path.split(os.path.abspath(path))
    stem = name[:-len(".keras")] if name.endswith(".keras") else name
    return os.path.join(folder, f".{stem}{suffix}")


if __name__ == "__main__":
    sys.exit(main())
