#!/usr/bin/env bash
# The archdiff story on the shipped fixtures (fixtures/demo/), each report shown:
#
#   1. archdiff diff      what changed between the pretrained source and the new target
#   2. archdiff transfer  copy the trained weights into the target by layer name
#   3. archdiff validate  rebuild the target with Keras, prove the weights arrived,
#                         compare the shared layers' outputs, fine-tune with the
#                         transferred layers frozen, and compare with training from scratch
#
# Runs on the CPU in well under 3 minutes (TensorFlow start-up included); a GPU is
# used when TensorFlow sees one. Exit 0 when the transfer validates.
#
# Environment: PYTHON (default .venv/bin/python, else python3); DEMO_OUT, a folder
# for the transferred model and the reports (default: a new temporary folder).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
OUT="${DEMO_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/archdiff-demo.XXXXXX")}"
mkdir -p "$OUT"
SOURCE=fixtures/demo/source.keras
TARGET=fixtures/demo/target.keras
TRANSFERRED="$OUT/transferred.keras"
rm -f "$TRANSFERRED"

# Wall-clock seconds, fractional where bash can tell (bash 5's EPOCHREALTIME).
now() { if [[ -n "${EPOCHREALTIME:-}" ]]; then echo "${EPOCHREALTIME/,/.}"; else date +%s; fi; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

bold() { if [[ -t 1 && -z "${NO_COLOR:-}" ]]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }

# TensorFlow's C++ start-up lines (before absl logging is set up) ignore
# TF_CPP_MIN_LOG_LEVEL; keep them off the demo's screen, keep everything else.
quiet_tf() { grep -v -E '^(WARNING: All log messages before absl::InitializeLog|I0000 |W0000 )' >&2 || true; }

# Run one step: show the command, run it, check its exit code is one of the expected ones.
step() {
    local title="$1" expected="$2"
    shift 2
    echo
    bold "== $title"
    bold "\$ archdiff $*"
    local start end code
    start=$(now)
    set +e
    "$PYTHON" -m archdiff "$@" 2> >(quiet_tf)
    code=$?
    set -e
    wait
    end=$(now)
    echo "(exit $code, $(elapsed "$start" "$end") s)"
    if [[ " $expected " != *" $code "* ]]; then
        echo "demo: 'archdiff $1' exited $code, expected $expected" >&2
        exit 1
    fi
}

begin=$(now)
bold "archdiff demo: a pretrained source (two conv blocks, 8-way head, trained on archdiff's built-in task)"
bold "and a new target (one block added, a new 6-way head). Outputs in $OUT"

# diff exits 1: the models differ (that is the point).
step "1. What changed?" "1" diff "$SOURCE" "$TARGET"

# transfer exits 0: done as asked; the new block and the new head keep their own (fresh) weights.
step "2. Move the trained weights by layer name" "0" transfer "$SOURCE" "$TARGET" -o "$TRANSFERRED"

# validate exits 0 only when every check passes.
step "3. Prove it: rebuild, weights arrived, outputs agree, fine-tune (frozen, then unfrozen at 1e-5)" "0" \
    validate "$TARGET" --weights "$TRANSFERRED" --source "$SOURCE" \
    --epochs 6 --unfreeze-lr 1e-5 --unfreeze-epochs 2 --no-progress

echo
bold "demo done in $(elapsed "$begin" "$(now)") s; the transferred model: $TRANSFERRED"
