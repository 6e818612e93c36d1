"""The JSON report of an :class:`~archdiff.diff.ArchDiff`: its ``to_dict()`` with the policy and exit code.

This module owns the JSON form as printed (schema:
``archdiff/schemas/diff.schema.json``): :func:`to_json_dict` adds the policy
result and the exit code that decided, :func:`render_json` writes it.
"""
from __future__ import annotations

import json

from archdiff.diff.result import ArchDiff


def to_json_dict(d: ArchDiff, *, policy=None, exit_code: int | None = None) -> dict:
    data = d.to_dict()
    data["policy"] = policy.to_dict() if policy is not None else None
    if exit_code is not None:
        data["exit_code"] = exit_code
    return data


def render_json(d: ArchDiff, *, policy=None, exit_code: int | None = None) -> str:
    return json.dumps(to_json_dict(d, policy=policy, exit_code=exit_code), indent=2, default=str) + "\n"
