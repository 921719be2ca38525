"""``phoenix force-unlock LOCK_ID``: release a state lock a crashed phoenix left behind."""

from __future__ import annotations

from phoenix.commands.context import Context


def force_unlock_command(ctx: Context, lock_id: str) -> int:
    ctx.store().force_unlock(lock_id)
    ctx.out.print(f"Released state lock {lock_id}.")
    return 0
