"""Helpers shared by the simulator's tests."""

from __future__ import annotations

NODE = "pve"


def run(px, upid: str, node: str = NODE) -> dict:
    """The status of task ``upid``, which must have stopped (at task_scale 0 it ends before the call returns)."""
    status = px.nodes(node).tasks(upid).status.get()
    assert status["status"] == "stopped"
    return status
