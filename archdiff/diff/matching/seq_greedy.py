"""Greedy in-order pairing of equal labels: the linear fallback of the order alignment.

This module owns :func:`greedy`: the k-th occurrence of a label in A with the
k-th in B, kept only while in order. It is what step 4 of matching uses
where Myers' algorithm (:mod:`~archdiff.diff.matching.seq_myers`) would cost
more than its budget.
"""
from __future__ import annotations

from collections import defaultdict


def greedy(sa: list[str], sb: list[str]) -> list[tuple[int, int]]:
    """The k-th occurrence of a label in A with the k-th in B, kept only while in order."""
    seen: dict[str, list[int]] = defaultdict(list)
    for j, s in enumerate(sb):
        seen[s].append(j)
    used: dict[str, int] = defaultdict(int)
    out = []
    last = -1
    for i, s in enumerate(sa):
        js = seen.get(s)
        if not js:
            continue
        k = used[s]
        while k < len(js) and js[k] <= last:
            k += 1
        if k < len(js):
            out.append((i, js[k]))
            last = js[k]
            used[s] = k + 1
    return out
