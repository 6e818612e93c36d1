"""The diff's and the gate's fixed tables, importable without the diff stage.

The command-line parser builds ``--fail-on``'s choices, the gate's default and
each command's ``--format`` choices from these tables, and the code that
decides uses the very same tuples (:mod:`archdiff.diff.kinds` re-exports
them), so a help text cannot drift from what the code does. The module is
plain data: building the parser must not import the diff engine.
"""
from __future__ import annotations

#: The kinds of difference, from the mildest to the most severe. ``values-changed``: the architecture is the
#: same but weight values differ (training, a moved "frozen" layer, NaNs). ``output-changing``: what a model's
#: outputs mean changed (an output layer's activation, softmax -> linear, or its number of units/classes).
KINDS = ("cosmetic", "values-changed", "weights-compatible", "weights-breaking", "output-changing",
         "interface-changing", "topology-changing")
#: ``diff --values``: every figure of each changed variable, equal-or-not only (stops at the first
#: difference), or no value comparison (``--topology-only``).
VALUE_MODES = ("figures", "equal", "off")
#: Accepted by ``--fail-on`` besides the kinds.
FAIL_ON_SPECIAL = ("any", "none")
#: Every value ``--fail-on`` accepts.
FAIL_ON_CHOICES = (*FAIL_ON_SPECIAL, *KINDS)
#: What ``archdiff diff`` fails on without --fail-on or a policy.
DIFF_DEFAULT_FAIL_ON = ("any",)
#: What ``archdiff gate`` fails on when neither --fail-on nor a policy says otherwise.
GATE_DEFAULT_FAIL_ON = ("weights-breaking", "output-changing", "interface-changing")
#: Report formats: ``archdiff diff`` writes all of these; the gate has no HTML page (one page per pair of models).
DIFF_FORMATS = ("text", "json", "markdown", "html")
GATE_FORMATS = ("text", "json", "markdown")
