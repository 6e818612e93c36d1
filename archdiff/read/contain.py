"""Crash containment: untrusted files are read in a supervised child process.

libhdf5 is C: a corrupt file can make it crash (a segfault on a corrupt
variable-length datatype) or loop forever with the GIL held, and no Python
``try`` catches either. So :func:`contained` runs a reader in a child process
with a time limit and a memory cap and hands back its result (the immutable
Architecture, pickled) or its error; a crash, a hang or a memory blow-up in
the child becomes one :class:`~archdiff.errors.InputError` line, exit 2.

The child is a ``fork`` of the current process when that is safe (one thread,
no TensorFlow/JAX/PyTorch loaded: their thread pools do not survive a fork),
which costs a few milliseconds since everything is already imported; else a
fresh interpreter. ``ARCHDIFF_CONTAIN=0`` reads in-process (a debugger, or a
platform without fork); ``ARCHDIFF_READ_TIMEOUT`` (seconds, default 300) and
``ARCHDIFF_READ_MEMORY`` (MiB the child may grow by, default 8192) set the limits.

:func:`start` forks a child ahead of time, so that two inputs are read side by
side on two cores; the :func:`contained` call with the same function and
arguments then collects its answer. A started child that is never collected is
killed when the command (:func:`abandon`) or the process ends.
"""
from __future__ import annotations

import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable

from archdiff.errors import ArchdiffError, InputError

_HEAVY = ("tensorflow", "jax", "torch")
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_MEMORY_MIB = 8192


def enabled() -> bool:
    return os.environ.get("ARCHDIFF_CONTAIN", "1") not in ("0", "false", "no") and hasattr(os, "fork")


def _limits() -> tuple[float, int]:
    try:
        timeout = float(os.environ.get("ARCHDIFF_READ_TIMEOUT", DEFAULT_TIMEOUT_S))
    except ValueError:
        timeout = DEFAULT_TIMEOUT_S
    try:
        memory = int(os.environ.get("ARCHDIFF_READ_MEMORY", DEFAULT_MEMORY_MIB))
    except ValueError:
        memory = DEFAULT_MEMORY_MIB
    return max(1.0, timeout), max(256, memory)


def _cap_memory(extra_mib: int) -> None:
    """Cap the child's address space at what it uses now plus ``extra_mib`` (a fork inherits the parent's)."""
    import resource

    try:
        with open("/proc/self/statm") as fh:
            current = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        current = 0
    limit = current + extra_mib * 1024 * 1024
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError):
        pass


def _run(fn: Callable[..., Any], args: tuple) -> bytes:
    try:
        outcome: tuple = ("ok", fn(*args))
    except ArchdiffError as exc:
        outcome = ("error", exc)
    except MemoryError:
        outcome = ("memory", None)
    except RecursionError:
        outcome = ("error", InputError("the file nests too deeply to read", path=_where(args)))
    except BaseException as exc:  # noqa: BLE001 - a bug: shown in the parent, with its traceback text
        import traceback

        outcome = ("bug", (type(exc).__name__, str(exc), traceback.format_exc()))
    try:
        return pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001
        return pickle.dumps(("bug", (type(exc).__name__, f"result could not be pickled: {exc}", "")))


def _where(args: tuple) -> str | None:
    return os.fspath(args[0]) if args and isinstance(args[0], (str, os.PathLike)) else None


def _forkable() -> bool:
    return threading.active_count() == 1 and not any(name in sys.modules for name in _HEAVY)


#: Children begun by :func:`start`, by (function, arguments): (pid, the read end of their pipe).
_started: dict[tuple, tuple[int, int]] = {}
_at_exit = False


def start(fn: Callable[..., Any], *args: Any) -> bool:
    """Begin ``fn(*args)`` in a forked child now; the next ``contained(fn, *args)`` collects it.

    Where a fork is not safe (or containment is off) nothing starts and
    ``contained`` runs the call as usual, so this only ever saves time. Returns
    whether a child was started (or already runs for these arguments).
    """
    if not enabled() or not _forkable():
        return False
    global _at_exit
    key = (fn, args)
    try:
        hash(key)
    except TypeError:
        return False
    if key not in _started:
        if not _at_exit:
            import atexit

            atexit.register(abandon)
            _at_exit = True
        _started[key] = _fork(fn, args, _limits()[1])
    return True


def abandon() -> None:
    """Kill and reap the started children nobody collected (the command ended before it needed them).

    The CLI calls it when a command ends, so a later read of the same path in
    this process (a test, a notebook) never gets an answer started earlier."""
    while _started:
        _, (pid, fd) = _started.popitem()
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)


def contained(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` run in a supervised child: its result, or its error raised here.

    ``fn`` must be a module-level function (a fresh interpreter imports it by
    name) whose arguments and result pickle. The first argument, when it is a
    path, names the file in error messages.
    """
    if not enabled():
        return fn(*args)
    timeout, memory = _limits()
    where = _where(args)
    try:
        begun = _started.pop((fn, args), None)
    except TypeError:  # arguments that cannot be a key were never started
        begun = None
    if begun is not None:
        # Its time limit counts from now: a child that finished early may have waited, blocked on a full pipe,
        # while this process read another input.
        data, status = _collect(*begun, timeout)
    elif _forkable():
        data, status = _in_fork(fn, args, timeout, memory)
    else:
        data, status = _in_interpreter(fn, args, timeout, memory)
    return _outcome(data, status, where, timeout, memory)


def _outcome(data: bytes | None, status: str, where: str | None, timeout: float, memory: int) -> Any:
    if status == "timeout":
        raise InputError(f"reading the file did not finish within {timeout:.0f} s (the HDF5 library hung on it)",
                         path=where, hint="the file is probably corrupt; save the model again with model.save() "
                                          "(or raise ARCHDIFF_READ_TIMEOUT for a huge, healthy file)")
    if status.startswith("signal:"):
        name = status.split(":", 1)[1]
        raise InputError(f"the HDF5 library crashed reading the file ({name})", path=where,
                         hint="the file is corrupt; save the model again with model.save()")
    if not data:
        raise InputError(f"the reader stopped without an answer ({status})", path=where,
                         hint="the file may be corrupt, or the machine out of memory")
    kind, value = pickle.loads(data)
    if kind == "ok":
        return value
    if kind == "error":
        raise value
    if kind == "memory":
        raise InputError(f"reading the file needs more than archdiff's {memory} MiB for one file", path=where,
                         hint="the file may be corrupt; raise ARCHDIFF_READ_MEMORY for a huge, healthy file")
    name, message, trace = value
    raise RuntimeError(f"{name} while reading {where}: {message}\n{trace}")


def _read_all(fd: int, deadline: float) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"".join(chunks), False
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if not ready:
            continue
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)


def _in_fork(fn, args, timeout: float, memory: int) -> tuple[bytes | None, str]:
    return _collect(*_fork(fn, args, memory), timeout)


def _fork(fn, args, memory: int) -> tuple[int, int]:
    """A child forked to run ``fn(*args)`` and write its pickled outcome into a pipe: (pid, the read end)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's stack
        code = 0
        try:
            os.close(read_fd)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            import faulthandler

            faulthandler.disable()  # a crash here is the parent's to report, in one line
            _cap_memory(memory)
            payload = _run(fn, args)
            view = memoryview(payload)
            while view:
                view = view[os.write(write_fd, view):]
        except BaseException:  # noqa: BLE001
            code = 70
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def _collect(pid: int, read_fd: int, timeout: float) -> tuple[bytes | None, str]:
    """The forked child's answer and how it ended; killed when it gives none within ``timeout`` s."""
    try:
        data, finished = _read_all(read_fd, time.monotonic() + timeout)
    finally:
        os.close(read_fd)
    if not finished:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return None, "timeout"
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return None, f"signal:{signal.Signals(os.WTERMSIG(status)).name}"
    return data, f"exit {os.WEXITSTATUS(status)}"


def _in_interpreter(fn, args, timeout: float, memory: int) -> tuple[bytes | None, str]:
    request = pickle.dumps((fn.__module__, fn.__qualname__, args, memory))
    env = {**os.environ, "ARCHDIFF_CONTAIN": "0"}
    try:
        proc = subprocess.run([sys.executable, "-c", "from archdiff.read.contain import _child_main; _child_main()"],
                              input=request, capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, "timeout"
    if proc.returncode < 0:
        return None, f"signal:{signal.Signals(-proc.returncode).name}"
    return proc.stdout, f"exit {proc.returncode}"


def _child_main() -> None:
    """Entry of a fresh interpreter: read the request on stdin, answer on stdout."""
    import gc
    import importlib

    from archdiff.limits import GC_THRESHOLDS

    gc.set_threshold(*GC_THRESHOLDS)  # a short-lived reader of many small objects
    module, qualname, args, memory = pickle.loads(sys.stdin.buffer.read())
    _cap_memory(memory)
    fn: Any = importlib.import_module(module)
    for part in qualname.split("."):
        fn = getattr(fn, part)
    sys.stdout.buffer.write(_run(fn, args))
    sys.stdout.buffer.flush()
