"""One backend's run for ``--backends``: ``python -m archdiff.cli.validate_worker JOB.json``.

:mod:`archdiff.validate.backends` writes the job (paths, options with
``backend`` and ``save_reference`` set, the report format) and starts this
module in a fresh process with ``KERAS_BACKEND`` set, so that Keras loads on
that backend. It writes the report as JSON and in the requested format, and
exits as ``archdiff validate`` does: 0 or 1 with the report written, 2 with
one error line on stderr.
"""
from __future__ import annotations

import json
import sys


def main(argv=None) -> int:
    from archdiff.errors import ArchdiffError
    from archdiff.output import write_text

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("archdiff: error: usage: python -m archdiff.cli.validate_worker JOB.json\n")
        return 2
    try:
        with open(args[0], encoding="utf-8") as fh:
            job = json.load(fh)
        from archdiff.validate import ValidateOptions, validate
        from archdiff.validate.render import render

        options = ValidateOptions.from_dict(job["options"])
        report = validate(job["target"], job.get("weights"), job.get("source"), options, progress=None)
        if job.get("internal_reference"):
            import dataclasses

            report = dataclasses.replace(report, saved_reference=None)
        write_text(job["report_json"], render(report, "json"))
        write_text(job["report_text"], render(report, job.get("format") or "text", colour=False)
                   if job.get("format") == "text" else render(report, job.get("format") or "text"))
        return report.exit_code
    except ArchdiffError as exc:
        sys.stderr.write(f"archdiff: error: {exc.one_line()}\n")
        return 2
    except (OSError, ValueError, KeyError) as exc:
        sys.stderr.write(f"archdiff: error: {type(exc).__name__}: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
