"""Myers' shortest edit script: the order alignment matching uses first.

This module owns :func:`myers`, O((N + M) * D) for D edits, which gives up
(returns None) past a work budget so that its caller can fall back to a
linear algorithm (:mod:`~archdiff.diff.matching.seq_greedy`).
"""
from __future__ import annotations


def myers(sa: list[str], sb: list[str], budget: int) -> list[tuple[int, int]] | None:
    """Myers' O((N + M) * D) shortest edit script; None when it would cost more than the budget."""
    n, m = len(sa), len(sb)
    if not n or not m:
        return []
    max_d = n + m
    offset = max_d + 1
    v = [0] * (2 * max_d + 3)
    #: trace[d]: the furthest x on diagonals -(d-1)..(d-1) before edit d.
    trace: list[list[int]] = []
    work = 0
    final = -1
    for d in range(max_d + 1):
        trace.append(v[offset - d + 1:offset + d] if d else [])
        for k in range(-d, d + 1, 2):
            if k == -d or (k != d and v[offset + k - 1] < v[offset + k + 1]):
                x = v[offset + k + 1]
            else:
                x = v[offset + k - 1] + 1
            y = x - k
            while x < n and y < m and sa[x] == sb[y]:
                x += 1
                y += 1
            v[offset + k] = x
            if x >= n and y >= m:
                final = d
                break
        if final >= 0:
            break
        work += 2 * d + 1 + len(trace[-1])
        if work > budget:
            return None
    pairs: list[tuple[int, int]] = []
    x, y = n, m
    for d in range(final, 0, -1):
        prev = trace[d]
        k = x - y
        if k == -d or (k != d and prev[k - 1 + d - 1] < prev[k + 1 + d - 1]):
            prev_k = k + 1
        else:
            prev_k = k - 1
        prev_x = prev[prev_k + d - 1]
        prev_y = prev_x - prev_k
        while x > prev_x and y > prev_y:
            x -= 1
            y -= 1
            pairs.append((x, y))
        x, y = prev_x, prev_y
    while x > 0 and y > 0:
        x -= 1
        y -= 1
        pairs.append((x, y))
    pairs.reverse()
    return pairs
