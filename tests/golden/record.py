"""Record the golden reports: ``python tests/golden/record.py`` (only after a deliberate change)."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from golden.cases import DATA, cases, run_case, scratch_folder  # noqa: E402


def main() -> None:
    DATA.mkdir(exist_ok=True)
    for old in DATA.glob("*.out"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp, scratch_folder(Path(tmp) / "s") as scratch:
        for case_id, argv in cases().items():
            (DATA / f"{case_id}.out").write_text(run_case(argv, scratch), encoding="utf-8")
    print(f"recorded {len(cases())} golden reports in {DATA}")


if __name__ == "__main__":
    main()
