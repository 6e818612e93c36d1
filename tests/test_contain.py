"""Crash containment (archdiff.read.contain): a crash, hang or memory blow-up in a reader is one error line.

Both ways of running the child are checked: a fork (the usual, cheap one) and
a fresh interpreter (used once TensorFlow, JAX or PyTorch is loaded or other
threads run, since their thread pools do not survive a fork).
"""
from __future__ import annotations

import ctypes
import threading
import time

import pytest
from support import FIXTURES

from archdiff.errors import InputError, UnsupportedFormatError
from archdiff.read import contain
from archdiff.read.dispatch import _load_path


@pytest.fixture(params=["fork", "interpreter"])
def mode(request, monkeypatch):
    # Each mode forced, whatever this process holds: in a full run TensorFlow is loaded by earlier tests, so
    # contain itself would pick the interpreter; the fork's mechanics are what this case checks (its children
    # run nothing of TensorFlow's). When contain picks which is checked below.
    monkeypatch.setattr(contain, "_forkable", lambda: request.param == "fork")
    return request.param


def test_a_segfault_in_the_reader_is_an_error_line(mode):
    with pytest.raises(InputError) as info:
        contain.contained(ctypes.string_at, 0)  # reads address 0: SIGSEGV in C, as libhdf5 does
    assert "crashed" in str(info.value) and "SIGSEGV" in str(info.value)


def test_a_hang_is_stopped_at_the_time_limit(mode, monkeypatch):
    monkeypatch.setenv("ARCHDIFF_READ_TIMEOUT", "1")
    start = time.monotonic()
    with pytest.raises(InputError) as info:
        contain.contained(time.sleep, 30)
    assert time.monotonic() - start < 20, "hung: the child was not stopped"
    assert "did not finish within 1 s" in str(info.value)


def test_errors_cross_with_their_path_and_hint(mode, tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello")
    with pytest.raises(UnsupportedFormatError) as info:
        contain.contained(_load_path, str(bogus))
    assert info.value.path == str(bogus) and info.value.hint and "unknown model file type" in info.value.message


def test_results_come_back_whole(mode):
    arch = contain.contained(_load_path, str(FIXTURES / "keras3" / "functional.keras"))
    assert arch.name == "functional_model" and len(arch.layers) > 3 and arch.has_weights


def test_a_memory_blow_up_is_reported_as_such(monkeypatch):
    monkeypatch.setenv("ARCHDIFF_READ_MEMORY", "256")
    with pytest.raises(InputError) as info:
        contain.contained(bytearray, 2 * 1024 ** 3)
    assert "more than archdiff's 256 MiB" in str(info.value)


def test_other_threads_make_it_use_a_fresh_interpreter():
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        assert not contain._forkable()
    finally:
        stop.set()
        worker.join()


def test_a_loaded_framework_makes_it_use_a_fresh_interpreter(monkeypatch):
    monkeypatch.setattr(contain.threading, "active_count", lambda: 1)
    for name in contain._HEAVY:
        monkeypatch.delitem(contain.sys.modules, name, raising=False)
    assert contain._forkable()
    monkeypatch.setitem(contain.sys.modules, "torch", object())
    assert not contain._forkable()


def test_it_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("ARCHDIFF_CONTAIN", "0")
    assert contain.contained(len, "abc") == 3  # in-process: a builtin's answer with no child at all


def test_children_forked_by_a_transfer_or_a_diff_of_two_weight_files_inherit_h5py(tmp_path):
    """Each reader's child imported h5py again (about 0.1 s each) when it was forked before the parent had:
    a transfer (which writes with h5py) and a diff of two weight files import it once, before forking.
    A diff of two JSON configs still imports no h5py at all."""
    import subprocess
    import sys

    demo, k3 = FIXTURES / "demo", FIXTURES / "keras3"
    code = f"""
import sys
from archdiff.read import contain
seen = []
real = contain._in_fork
def spy(fn, args, *rest):
    seen.append('h5py' in sys.modules)
    return real(fn, args, *rest)
contain._in_fork = spy
from archdiff.cli import main
argv = sys.argv[1:]
main(argv)
print(seen, 'h5py' in sys.modules, file=sys.stderr)
"""
    runs = {
        "transfer": ["transfer", str(demo / "source.keras"), str(demo / "target.keras"), "-o",
                     str(tmp_path / "out.keras")],
        "diff": ["diff", str(demo / "source.keras"), str(demo / "target.keras"), "--topology-only"],
        "json": ["diff", str(k3 / "functional.json"), str(k3 / "nested.json")],
    }
    got = {}
    for name, argv in runs.items():
        done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                              env={**__import__("os").environ, "ARCHDIFF_CONTAIN": "1"})
        got[name] = done.stderr.strip().splitlines()[-1]
    assert got["transfer"] == "[True, True] True"
    assert got["diff"] == "[True, True] True"
    assert got["json"].endswith("False")
