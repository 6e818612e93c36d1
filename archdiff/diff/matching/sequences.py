"""Sequence alignment for matching step 4: one dispatcher, one module per algorithm.

This module owns aligning two sequences of layer labels in order (in the
spirit of nbdime's ``diffing/sequences.py``): :func:`align` trims the common
head and tail, then asks Myers' shortest edit script
(:mod:`~archdiff.diff.matching.seq_myers`) within a work budget, and falls
back to pairing equal labels greedily in order
(:mod:`~archdiff.diff.matching.seq_greedy`) past it, so that the cost stays
near-linear on any input. :func:`increasing` picks the anchors (pairs made so
far) that keep their order on both sides, between which :func:`align` runs.
"""
from __future__ import annotations

from bisect import bisect_left

from archdiff.diff.matching.seq_greedy import greedy
from archdiff.diff.matching.seq_myers import myers

#: Work budget of one order alignment (Myers); past it, equal labels pair greedily in order.
LCS_CELLS = 4_000_000
#: The algorithms :func:`align` can start with, by name (Myers falls back to greedy past its budget).
ALGORITHMS = ("myers", "greedy")


def increasing(anchors: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """The longest chain of anchors increasing in both orders (patience / LIS)."""
    tails: list[int] = []
    tail_idx: list[int] = []
    prev = [-1] * len(anchors)
    for i, (_, b, _) in enumerate(anchors):
        k = bisect_left(tails, b)
        if k == len(tails):
            tails.append(b)
            tail_idx.append(i)
        else:
            tails[k] = b
            tail_idx[k] = i
        prev[i] = tail_idx[k - 1] if k else -1
    chain = []
    i = tail_idx[-1] if tail_idx else -1
    while i >= 0:
        chain.append(anchors[i])
        i = prev[i]
    return chain[::-1]


def align(sa: list[str], sb: list[str], *, algorithm: str = "myers",
          budget: int = LCS_CELLS) -> list[tuple[int, int]]:
    """Index pairs of equal items in a shortest edit script (Myers), in order.

    A shortest edit script keeps periodic runs (the same block repeated) in
    step where a longest-block-first matcher would slide them out of phase.
    It costs O((N + M) * D) for D edits; past ``budget``, equal items are paired
    greedily in order (as ``algorithm="greedy"`` does from the start).
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown alignment algorithm '{algorithm}' (expected one of {', '.join(ALGORITHMS)})")
    n, m = len(sa), len(sb)
    if not n or not m:
        return []
    # Common head and tail cost nothing.
    head = 0
    while head < n and head < m and sa[head] == sb[head]:
        head += 1
    tail = 0
    while tail < n - head and tail < m - head and sa[n - 1 - tail] == sb[m - 1 - tail]:
        tail += 1
    out = [(i, i) for i in range(head)]
    mid_a, mid_b = sa[head:n - tail], sb[head:m - tail]
    mid = myers(mid_a, mid_b, budget) if algorithm == "myers" else None
    if mid is None:
        mid = greedy(mid_a, mid_b)
    out.extend((i + head, j + head) for i, j in mid)
    out.extend((n - tail + k, m - tail + k) for k in range(tail))
    return out


