"""Carrying out a :class:`~archdiff.transfer.plan.TransferPlan`: writing OUT, verifying it, the report.

``apply_transfer(plan, out)`` writes OUT in the target's format: a weights file
is copied (leaving out the bytes about to be overwritten) and its matched
datasets overwritten one block at a time; a ``.keras`` model gets a new zip
with the same ``config.json`` and ``metadata.json`` and the new
``model.weights.h5``; a sharded target (``*.weights.json``) gets new shards
named after OUT as Keras names them, each a copy of the target's with its
datasets overwritten, and an index naming them. OUT is built as hidden
temporary files beside it, read back and checked (the checksum of every
copied dataset), then renamed into place (a sharded OUT's index last). It
returns a :class:`TransferReport`. A plan with problems (exit 2) or refused on
coverage (exit 1) raises :class:`TransferError` and writes nothing.

Every HDF5 file is reached through a store (:mod:`archdiff.store`: the
source's and the target's layouts, the copy being written); the bytes are
moved by :mod:`archdiff.transfer.write`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

from archdiff.errors import ArchdiffError, InputError, OutputError, UsageError
from archdiff.store import Keras3WeightsStore, KerasZipStore, ShardedStore, WeightStore, open_store, store_class
from archdiff.transfer.plan import TransferOptions, TransferPlan, plan_transfer

#: Version of the JSON report (archdiff/schemas/transfer.schema.json). 2: exit 1 means refused on coverage
#: (nothing written), a new head exits 0; ``adapter``, ``refused``, ``coverage``, ``nesting`` added.
SCHEMA_VERSION = 2


class TransferError(ArchdiffError):
    """The plan is not carried out; ``plan`` holds every reason at once.

    ``exit_code`` is the plan's: 2 when it cannot run (problems), 1 when it is
    refused on coverage (:attr:`TransferPlan.refusal`).
    """

    def __init__(self, message: str, *, plan: "TransferPlan | None" = None, hint: str | None = None,
                 exit_code: int = 2):
        self.plan = plan
        self.exit_code = exit_code
        super().__init__(message, hint=hint)


# -- the report ------------------------------------------------------------------
@dataclass(frozen=True)
class TransferReport:
    """A plan and what became of it: written or not (dry run), verified, checksums."""

    plan: TransferPlan
    output: str | None
    written: bool = False
    dry_run: bool = False
    verified: bool = False
    #: ``"<target layer>/<variable>"`` -> checksum of the bytes written.
    checksums: Mapping[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return self.plan.exit_code

    def to_dict(self) -> dict:
        from archdiff.transfer.write import CHECKSUM

        plan = self.plan
        layers = []
        for layer in plan.layers:
            item = layer.to_dict()
            for var in item["variables"]:
                digest = self.checksums.get(f"{layer.target}/{var['target']}")
                if digest is not None:
                    var[CHECKSUM] = digest
            layers.append(item)
        return {
            "schema_version": SCHEMA_VERSION,
            "source": plan.source.to_dict(),
            "target": plan.target.to_dict(),
            "output": {"path": self.output, "written": self.written, "dry_run": self.dry_run,
                       "verified": self.verified, "checksum": CHECKSUM},
            "options": plan.options.to_dict(),
            "ok": not plan.problems and not plan.refusal,
            "exit_code": self.exit_code,
            "refused": plan.refusal,
            "coverage": plan.coverage,
            "nesting": [n.to_dict() for n in plan.nestings],
            "totals": plan.totals.to_dict(),
            "layers": layers,
            "unused_source_layers": [u.to_dict() for u in plan.unused],
            "problems": list(plan.problems),
            "notes": list(plan.notes),
        }


# -- OUT ---------------------------------------------------------------------------
_OUT_SUFFIXES = {
    "keras": (".keras",),
    "weights.h5": (".weights.h5",),
    "preset": (".weights.h5",),  # a keras-hub preset's model.weights.h5, to put back as the preset's
    "h5": (".h5", ".hdf5"),
    "h5-weights": (".h5", ".hdf5"),
    "weights.json": (".weights.json",),
    "task-preset": ("/ (a new preset folder)",),
}


def _suffix_family(path: str) -> str | None:
    lower = path.lower()
    if lower.endswith(".keras"):
        return "keras"
    if lower.endswith(".weights.json"):
        return "weights.json"
    if lower.endswith(".weights.h5"):
        return "weights.h5"
    if lower.endswith((".h5", ".hdf5")):
        return "h5"
    return None


def check_output(out: str, plan: TransferPlan) -> None:
    """OUT must not be an input, and must be named so Keras reads it in the target's format."""
    from archdiff.output import refuse_overwriting_inputs

    inputs = [plan.source.path, plan.target.path, *plan.source_files]
    if plan.target.format == "weights.json":
        inputs += list(ShardedStore.companion_files(plan.target.path))
    refuse_overwriting_inputs(out, inputs)
    fmt = plan.target.format
    if fmt == "task-preset":
        _check_preset_output(out, plan)
        return
    have = _suffix_family(out)
    family = "h5" if fmt in ("h5", "h5-weights") else "weights.h5" if fmt == "preset" else fmt
    # Whatever the target is called, OUT is read back by its own name (as Keras reads it).
    if have != family:
        raise UsageError(
            f"the output '{out}' does not end with {' or '.join(_OUT_SUFFIXES[fmt])}, "
            f"but it is written as the target's format ({plan.target.description})",
            hint="Keras picks the loader by the file name; name OUT like the target")
    if fmt == "weights.json":
        from archdiff.store.sharded import shard_names

        for shard in shard_names(out, len(ShardedStore.companion_files(plan.target.path))):
            refuse_overwriting_inputs(shard, inputs)


# -- applying -----------------------------------------------------------------------
#: Every store apply opens skips the per-dataset ``check_dataset`` (see DatasetIndex): plan_transfer read both
#: inputs through archdiff.read, which ran it on every dataset they hold, _copy_all re-checks each shape
#: against the plan, and the other files are archdiff's own copy of the target. The whole-file scan (links,
#: hard-link cycles, global heaps) still runs on every open. Checking again costs about 20 ms per 300 datasets
#: per file, some 5% of a ResNet50 transfer.
_CHECKED_BY_THE_PLAN = {"check_datasets": False}


def _open_source(plan: TransferPlan) -> WeightStore:
    """The source's store, opened read-only (a sharded source with the shards the plan resolved)."""
    info = plan.source
    options = {"shards": plan.source_files} if info.format == "weights.json" else {}
    return open_store(info.path, format=info.format, **options, **_CHECKED_BY_THE_PLAN)


def apply_transfer(plan: TransferPlan, out: str | os.PathLike, *, progress: bool | None = None) -> TransferReport:
    """Write OUT: the target with every planned variable copied in; verified, then renamed into place.

    ``progress``: None shows a bar on a terminal only; True/False force it.
    Raises :class:`TransferError` (and writes nothing) when the plan has problems.
    """
    from archdiff.progress import Progress
    from archdiff.transfer.write import exit_on_termination

    out = os.fspath(out)
    if plan.problems:
        raise TransferError(problem_line(plan), plan=plan, hint=_problem_hint(plan))
    if plan.refusal:
        raise TransferError(f"refused, nothing was written: {plan.refusal}", plan=plan, exit_code=1)
    check_output(out, plan)
    copies = plan.copies
    total = sum(v.nbytes for _, v in copies)
    # Writing and then verifying reads every copied byte twice.
    enabled = progress if progress is not None else (None if total >= 16 * 1024 * 1024 else False)

    def bar(label: str) -> Progress:
        return Progress(total, label, enabled=enabled)

    with exit_on_termination(), _open_source(plan) as source:
        if plan.target.format == "keras":
            checksums = _write_keras(plan, out, copies, source, bar)
        elif plan.target.format == "weights.json":
            checksums = _write_sharded(plan, out, copies, source, bar)
        elif plan.target.format == "task-preset":
            checksums = _write_task_preset(plan, out, copies, source, bar)
        else:
            checksums = _write_weights_file(plan, out, copies, source, bar)
    return TransferReport(plan, out, written=True, verified=True, checksums=checksums)


def dry_run(plan: TransferPlan, out: str | os.PathLike | None = None) -> TransferReport:
    """The report of a plan that is not carried out (``--dry-run``); OUT is checked, not written."""
    out = os.fspath(out) if out is not None else None
    if out is not None:
        check_output(out, plan)
    return TransferReport(plan, out, written=False, dry_run=True)


def transfer(source, target, out, options: TransferOptions | None = None, *,
             progress: bool | None = None) -> TransferReport:
    """Plan and apply in one call."""
    return apply_transfer(plan_transfer(source, target, options), out, progress=progress)


def problem_line(plan: TransferPlan, *, dry_run: bool = False) -> str:
    """The one line that says why the plan cannot run (``dry_run``: in the conditional)."""
    n = len(plan.problems)
    mismatched = plan.totals.mismatched_layers
    verb = ("would not fit" if dry_run else "do not fit") if mismatched != 1 else (
        "would not fit" if dry_run else "does not fit")
    head = (f"{mismatched} matched layer{'s' if mismatched != 1 else ''} {verb} the target" if mismatched
            else f"{n} problem{'s' if n != 1 else ''}")
    return f"{head}, nothing {'would be' if dry_run else 'was'} written: " + " | ".join(plan.problems)


def _problem_hint(plan: TransferPlan) -> str:
    if plan.totals.mismatched_layers:
        return ("pass --skip-mismatch to leave those layers as they are, --adapt for shapes that can be adapted, "
                "--allow-cast for dtype changes, or --map to pair layers differently")
    return "check the layer names with `archdiff layers`, then pair them with --map OLD=NEW"


def problem_hint(plan: TransferPlan) -> str:
    """What to do about the plan's problems."""
    return _problem_hint(plan)


def _copy_all(written: WeightStore, copies, source: WeightStore, where: str, bar) -> dict[str, str]:
    from archdiff.transfer.write import Checksums, copy_dataset

    pending = {}
    with Checksums() as checksums, bar("writing  ") as progress:
        for layer, var in copies:
            src = source.dataset(var.source_location)
            dst = written.dataset(var.target_location)
            if src.shape != tuple(var.source_shape) or dst.shape != tuple(var.shape):
                raise InputError(f"'{var.source_location}' or '{var.target_location}' changed shape since planning",
                                 path=where, hint="run the transfer again")
            key = f"{layer.target}/{var.target}"
            if var.adaptation is not None:
                pending[key] = _write_adapted(src, dst, var, progress.advance, checksums)
            else:
                pending[key] = copy_dataset(src, dst, dtype=dst.dtype, progress=progress.advance,
                                            checksums=checksums)
        return {k: future.result() for k, future in pending.items()}


def _write_adapted(src, dst, var, advance, checksums):
    """An adapted variable: the source's whole tensor read, adapted (archdiff.transfer.adapt), written once."""
    from archdiff.transfer.adapt import adapt_array

    value = adapt_array(var.adaptation, src.read(), var.shape, dst.dtype)
    dst.write(value)
    hasher = checksums.start()
    checksums.update(hasher, value)
    advance(value.nbytes)
    return checksums.finish(hasher)


def _verify(written: WeightStore, copies, checksums: Mapping[str, str], where: str, bar) -> None:
    from archdiff.transfer.write import Checksums, checksum_dataset

    with Checksums() as hashing, bar("verifying") as progress:
        got = {f"{layer.target}/{var.target}": checksum_dataset(written.dataset(var.target_location),
                                                                progress=progress.advance, checksums=hashing)
               for layer, var in copies}
        bad = [key for key, future in got.items() if future.result() != checksums[key]]
    if bad:
        raise OutputError(f"reading the output back, {len(bad)} variables differ from what was written: "
                          + ", ".join(bad[:10]), path=where, hint="check the disk and run the transfer again")


def _holes(target: WeightStore, copies) -> list[tuple[int, int]]:
    """Byte ranges of the target's HDF5 that every copy overwrites completely."""
    return target.raw_ranges(var.target_location for _, var in copies)


def _write_weights_file(plan, out, copies, source, bar) -> dict[str, str]:
    from archdiff.output import atomic_path
    from archdiff.transfer.write import copy_file_except, default_file_mode, syncing

    layout = store_class(plan.target.format)
    target = plan.target.path
    with layout(target, **_CHECKED_BY_THE_PLAN) as original:
        holes = _holes(original, copies)
    with atomic_path(out) as tmp:
        copy_file_except(target, tmp, holes)
        with layout(tmp, mode="r+", where=out, **_CHECKED_BY_THE_PLAN) as written:
            checksums = _copy_all(written, copies, source, out, bar)
        with syncing(tmp, where=out), layout(tmp, where=out, **_CHECKED_BY_THE_PLAN) as written:
            _verify(written, copies, checksums, out, bar)
        default_file_mode(tmp)
    return checksums


def _write_keras(plan, out, copies, source, bar) -> dict[str, str]:
    from archdiff.output import atomic_path
    from archdiff.transfer.write import (
        copy_file_except,
        copy_zip_member,
        default_file_mode,
        rebuild_keras_zip,
        scratch_file,
        syncing,
    )

    member = KerasZipStore.MEMBER
    target = plan.target.path
    with atomic_path(out) as tmp, scratch_file(out, ".weights.h5.tmp") as scratch:
        # The weights come out of the zip as a plain .weights.h5, are overwritten there, and go back in.
        span = KerasZipStore.weights_span(target)
        if span is not None:
            with KerasZipStore(target, **_CHECKED_BY_THE_PLAN) as original:
                holes = _holes(original, copies)
            copy_file_except(target, scratch, holes, start=span[0], length=span[1])
        else:
            copy_zip_member(target, member, scratch)
        with Keras3WeightsStore(scratch, mode="r+", where=out, **_CHECKED_BY_THE_PLAN) as written:
            checksums = _copy_all(written, copies, source, out, bar)
        rebuild_keras_zip(target, {member: scratch}, tmp)
        with syncing(tmp, where=out):
            KerasZipStore.compare_members(target, tmp, where=out)
            with KerasZipStore(tmp, where=out, **_CHECKED_BY_THE_PLAN) as written:
                _verify(written, copies, checksums, out, bar)
        default_file_mode(tmp)
    return checksums


def _write_sharded(plan, out, copies, source, bar) -> dict[str, str]:
    """A sharded OUT: each target shard copied (holes where it is overwritten), written, verified, renamed.

    The shards keep the target's order and contents apart from the copied
    variables, under the names Keras gives OUT's shards; the index, naming
    them, is renamed into place last, so an interrupted run leaves no OUT.
    """
    from contextlib import ExitStack

    from archdiff.output import atomic_path
    from archdiff.store.sharded import rewrite_index, shard_names
    from archdiff.transfer.write import copy_file_except, default_file_mode, syncing

    target = plan.target.path
    old = ShardedStore.companion_files(target)
    new = shard_names(out, len(old))
    with ShardedStore(target, shards=old, **_CHECKED_BY_THE_PLAN) as original:
        holes: list[list[tuple[int, int]]] = [[] for _ in old]
        for _, var in copies:
            found = original.dataset(var.target_location).raw_range()
            if found is not None:
                holes[original.shard_of(var.target_location)].append(found)
    with ExitStack() as stack:
        # Entered first, renamed last: the index appears only once every shard is in place.
        index_tmp = stack.enter_context(atomic_path(out))
        tmps = [stack.enter_context(atomic_path(path)) for path in new]
        for src_shard, tmp, gaps in zip(old, tmps, holes):
            copy_file_except(src_shard, tmp, gaps)
        with ShardedStore(target, shards=tmps, mode="r+", where=out, **_CHECKED_BY_THE_PLAN) as written:
            checksums = _copy_all(written, copies, source, out, bar)
        with syncing(*tmps, where=out), \
                ShardedStore(target, shards=tmps, where=out, **_CHECKED_BY_THE_PLAN) as written:
            _verify(written, copies, checksums, out, bar)
        text = rewrite_index(target, {os.path.basename(a): os.path.basename(b) for a, b in zip(old, new)})
        with open(index_tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        for tmp in (index_tmp, *tmps):
            default_file_mode(tmp)
    return checksums


# -- a keras-hub task preset ----------------------------------------------------------
def _preset_members(folder: str) -> list[str]:
    """The target preset's files, relative to it (tokenizer assets in sub-folders too); links and special
    files refused, so that OUT holds only regular files copied from the target."""
    import stat

    out: list[str] = []
    pending = [""]
    while pending:
        rel = pending.pop()
        for entry in sorted(os.scandir(os.path.join(folder, rel)), key=lambda e: e.name):
            name = os.path.join(rel, entry.name)
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISDIR(mode):
                pending.append(name)
            elif stat.S_ISREG(mode):
                out.append(name)
            else:
                raise UsageError(f"the target preset holds '{name}', which is not a regular file or folder",
                                 path=folder, hint="a preset folder written by keras-hub holds only files and "
                                 "folders; copy the preset without links first")
    return out


def _check_preset_output(out: str, plan: TransferPlan) -> None:
    """A task-preset OUT is a new folder: it must not exist yet, and its parent must."""
    if os.path.lexists(out):
        raise UsageError(f"the output '{out}' already exists; a transfer into a task preset writes a new preset "
                         "folder", hint="give a path that does not exist yet (the preset's files are copied there)")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise UsageError(f"the folder '{parent}' does not exist", path=out,
                         hint="create it first or choose another output path")
    _preset_members(plan.target.path)


def _write_task_preset(plan, out, copies, source, bar) -> dict[str, str]:
    """A task-preset OUT: a new folder holding the target preset's files, its two weight files overwritten
    where the plan copies; written beside OUT, verified, then renamed into place (no OUT on failure)."""
    import shutil
    import tempfile

    from archdiff.read.preset import task_files
    from archdiff.store.preset import TaskPresetStore
    from archdiff.transfer.write import copy_file_except, default_file_mode, syncing

    target = plan.target.path
    weights = [p for p in task_files(target)]
    members = _preset_members(target)
    with TaskPresetStore(target, **_CHECKED_BY_THE_PLAN) as original:
        holes: list[list[tuple[int, int]]] = [[], []]
        for _, var in copies:
            found = original.dataset(var.target_location).raw_range()
            if found is not None:
                holes[original.part(var.target_location)].append(found)
    parent = os.path.dirname(os.path.abspath(out))
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(out))}.", suffix=".tmp", dir=parent)
    try:
        written_files: list[str | None] = [None, None]
        for rel in members:
            src = os.path.join(target, rel)
            dst = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            which = next((i for i, w in enumerate(weights) if w is not None and os.path.samefile(w, src)), None)
            if which is not None:
                copy_file_except(src, dst, holes[which])
                written_files[which] = dst
            else:
                shutil.copyfile(src, dst)
        files = (written_files[0], written_files[1])
        with TaskPresetStore(tmp, files=files, mode="r+", where=out, **_CHECKED_BY_THE_PLAN) as written:
            checksums = _copy_all(written, copies, source, out, bar)
        with syncing(*files, where=out), \
                TaskPresetStore(tmp, files=files, where=out, **_CHECKED_BY_THE_PLAN) as written:
            _verify(written, copies, checksums, out, bar)
        for rel in members:
            default_file_mode(os.path.join(tmp, rel))
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)
        if os.path.lexists(out):
            raise UsageError(f"the output '{out}' appeared while archdiff wrote it; nothing was replaced",
                             hint="give a path that does not exist yet")
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return checksums
