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


def test_children_inherit_h5py_where_their_readers_need_it_and_nothing_imports_it_otherwise(tmp_path):
    """Each reader's child imported h5py again (about 0.1 s each) when it was forked before the parent had:
    a transfer (which writes with h5py) and a diff with a Keras 2 .h5 (whose reader needs h5py) import it
    once, before forking. Keras 3 files' trees and values are read without h5py (read.hdf5_lite,
    store.lite): a diff of two imports it nowhere, unless that reader is switched off, when both children
    inherit it. A diff of two JSON configs imports no h5py at all."""
    import subprocess
    import sys

    demo, k3 = FIXTURES / "demo", FIXTURES / "keras3"
    code = """
import sys
from archdiff.read import contain
seen = []
real = contain._fork
def spy(fn, args, *rest):
    seen.append('h5py' in sys.modules)
    return real(fn, args, *rest)
contain._fork = spy
from archdiff.cli import main
argv = sys.argv[1:]
main(argv)
print(seen, 'h5py' in sys.modules, file=sys.stderr)
"""
    runs = {
        "transfer": ["transfer", str(demo / "source.keras"), str(demo / "target.keras"), "-o",
                     str(tmp_path / "out.keras")],
        "topology": ["diff", str(demo / "source.keras"), str(demo / "target.keras"), "--topology-only"],
        "values": ["diff", str(demo / "source.keras"), str(demo / "target.keras")],
        "values, lite off": ["diff", str(demo / "source.keras"), str(demo / "target.keras")],
        "keras 2": ["diff", str(FIXTURES / "keras2" / "functional.h5"), str(k3 / "functional.keras"),
                    "--topology-only"],
        "json": ["diff", str(k3 / "functional.json"), str(k3 / "nested.json")],
    }
    got = {}
    for name, argv in runs.items():
        lite = "0" if name.endswith("lite off") else "1"
        done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                              env={**__import__("os").environ, "ARCHDIFF_CONTAIN": "1", "ARCHDIFF_LITE_HDF5": lite})
        got[name] = done.stderr.strip().splitlines()[-1]
    assert got["transfer"] == "[True, True] True"
    assert got["topology"] == "[False, False] False"
    assert got["values"] == "[False, False] False"
    assert got["values, lite off"] == "[True, True] True"
    assert got["keras 2"] == "[True, True] True"
    assert got["json"].endswith("False")


def test_a_started_read_is_collected_by_the_call_it_stands_for(monkeypatch):
    forks = []
    real = contain._fork
    monkeypatch.setattr(contain, "_fork", lambda fn, args, memory: forks.append(args) or real(fn, args, memory))
    monkeypatch.setattr(contain, "_forkable", lambda: True)
    path = str(FIXTURES / "keras3" / "functional.keras")
    assert contain.start(_load_path, path)
    assert contain.start(_load_path, path)  # already running: not forked twice
    assert forks == [(path,)]
    arch = contain.contained(_load_path, path)
    assert forks == [(path,)] and not contain._started
    assert arch == _load_path(path)
    contain.contained(_load_path, path)  # collected once: the next call forks its own child
    assert forks == [(path,), (path,)]


def test_a_started_read_that_fails_raises_when_collected(tmp_path, monkeypatch):
    monkeypatch.setattr(contain, "_forkable", lambda: True)
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"PK\x03\x04 not a zip")
    assert contain.start(_load_path, str(bad))
    with pytest.raises(InputError) as info:
        contain.contained(_load_path, str(bad))
    assert info.value.path == str(bad)


def test_a_started_childs_time_limit_counts_from_its_collection(monkeypatch):
    """A child that finished while this process read another input is not called hung; one still running
    past the limit, counted from when it is asked for, is."""
    monkeypatch.setattr(contain, "_forkable", lambda: True)
    monkeypatch.setenv("ARCHDIFF_READ_TIMEOUT", "1")
    assert contain.start(time.sleep, 1.5)
    time.sleep(2.0)  # longer than the limit, but the child is done
    assert contain.contained(time.sleep, 1.5) is None
    assert contain.start(time.sleep, 30)
    with pytest.raises(InputError) as info:
        contain.contained(time.sleep, 30)
    assert "did not finish within 1 s" in str(info.value)


def test_a_started_read_nobody_collects_is_killed_when_the_command_ends(tmp_path, monkeypatch):
    import os

    from archdiff.cli import main

    monkeypatch.setattr(contain, "_forkable", lambda: True)
    assert contain.start(time.sleep, 60)
    (pid, _), = contain._started.values()
    good = str(FIXTURES / "keras3" / "functional.keras")
    # A is refused: the diff ends before B (started beside it) is collected.
    assert main(["diff", str(tmp_path / "missing.keras"), good]) == 2
    assert not contain._started
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # killed and reaped: no such child any more


def test_nothing_starts_where_a_fork_is_unsafe_or_containment_is_off(monkeypatch):
    monkeypatch.setattr(contain, "_forkable", lambda: False)
    assert not contain.start(time.sleep, 0)
    monkeypatch.setattr(contain, "_forkable", lambda: True)
    monkeypatch.setenv("ARCHDIFF_CONTAIN", "0")
    assert not contain.start(time.sleep, 0)
    monkeypatch.delenv("ARCHDIFF_CONTAIN")
    assert not contain.start(time.sleep, [0])  # arguments that cannot be a key
    assert not contain._started


def test_prefetch_starts_only_what_load_would_hand_to_the_child_as_it_is(tmp_path, monkeypatch):
    import os

    from archdiff.read.dispatch import prefetch

    monkeypatch.setattr(contain, "_forkable", lambda: True)
    fifo = tmp_path / "model.keras"
    os.mkfifo(fifo)
    for spec in ("-", "HEAD:model.keras", str(FIXTURES / "keras3" / "functional.json"), str(fifo),
                 str(tmp_path / "missing.keras"), "examples.factory:build"):
        assert not prefetch(spec), spec
    assert not contain._started
    assert prefetch(str(FIXTURES / "keras3" / "functional.h5"))
    contain.abandon()
    assert not contain._started
