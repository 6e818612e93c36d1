"""Record the golden reports: ``python tests/golden/record.py`` (only after a deliberate change)."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from golden.cases import DATA, cases, run_case, scratch_folder  # noqa: E402


def main() -> None:
    # Every case runs before any golden file changes: a crash leaves the old set as it was.
    with tempfile.TemporaryDirectory() as tmp, scratch_folder(Path(tmp) / "s") as scratch:
        recorded = {case_id: run_case(argv, scratch) for case_id, argv in cases().items()}
    DATA.mkdir(exist_ok=True)
    for old in DATA.glob("*.out"):
        old.unlink()
    for case_id, text in recorded.items():
        (DATA / f"{case_id}.out").write_text(text, encoding="utf-8")
    print(f"recorded {len(cases())} golden reports in {DATA}")


if __name__ == "__main__":
    main()
