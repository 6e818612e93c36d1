"""Every report archdiff prints on the fixtures, byte for byte against its golden file.

The cases and the recorder live in ``tests/golden/``; a case's id names the
command, the format and the fixtures, so a failure says which report moved.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from golden.cases import DATA, cases, run_case, scratch_folder

CASES = cases()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    with scratch_folder(tmp_path_factory.mktemp("golden") / "s") as folder:
        yield folder


def test_every_case_has_a_golden_file():
    recorded = {p.stem for p in DATA.glob("*.out")}
    assert len(CASES) > 100
    assert recorded == set(CASES)


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_report_is_byte_identical(case_id: str, scratch: Path):
    expected = (DATA / f"{case_id}.out").read_text(encoding="utf-8")
    assert run_case(CASES[case_id], scratch) == expected
