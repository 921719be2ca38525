"""Saved plans as untrusted files: sealed to the state with a keyed MAC, narrowed at apply.

A plan file travels (CI artifacts, review) between ``plan --out`` and ``apply FILE``, and apply
runs it without a prompt, so an edited plan must never run.  Two independent defences:

* **The seal**: the plan is written 0600 with ``mac`` = HMAC-SHA256 over its canonical JSON, keyed
  by the state's ``plan_key`` — a random key that never leaves the state file (unlike the lineage,
  which the plan names).  ``apply FILE`` refuses a plan whose MAC does not verify, or that names
  another lineage.  ``plan --out`` writes the state first if it has no key on disk yet.
* **Narrowing**: even a sealed plan only runs steps phoenix derives itself.  At apply the plan is
  built again from the desired file — which must still hash to the recorded value — the same
  state and the inventory just read, with the plan's own options; each saved resource change must
  equal the re-derived one, and every ``configure`` step may write only registry attributes.  So a
  stolen key still cannot set ``hookscript``, ``args`` or any value the desired file does not produce.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from phoenix.diff.attributes import CONFIGURED
from phoenix.errors import PhoenixError
from phoenix.plan.model import Plan
from phoenix.plan.steps import Configure
from phoenix.state.model import State
from phoenix.text import printable

__all__ = ["sealed_state", "save_sealed", "load_sealed", "check_narrowed"]

MAC_PREFIX = "hmac-sha256:"
AGAIN = "run 'phoenix plan --out' again"


def _mac(data: dict[str, Any], key: str) -> str:
    payload = json.dumps({k: v for k, v in data.items() if k != "mac"}, sort_keys=True, separators=(",", ":"),
                         ensure_ascii=True)
    return MAC_PREFIX + hmac.new(bytes.fromhex(key), payload.encode("ascii"), hashlib.sha256).hexdigest()


def sealed_state(store: Any) -> State:
    """The state, with its plan key on disk: written once (under the lock) if the file lacks one."""
    with store.lock("plan --out"):
        state: State = store.read()
        if "plan_key" not in state.model_fields_set or state.serial == 0:
            store.write(state)
        return state


def save_sealed(plan: Plan, path: Path, state: State) -> None:
    """Write ``plan`` with its MAC (0600, atomically)."""
    plan.save(path, mac=lambda data: _mac(data, state.plan_key))


def load_sealed(path: Path, state: State) -> Plan:
    """The saved plan, if its MAC verifies with this state's key and it names this state's lineage."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise PhoenixError(f"{path}: no such plan file") from None
    except OSError as exc:
        raise PhoenixError(f"{path}: cannot read the plan: {exc.strerror or exc}") from None
    except (ValueError, RecursionError):
        raise PhoenixError(f"{path}: not a phoenix plan file (not JSON)") from None
    if not isinstance(data, dict):
        raise PhoenixError(f"{path}: not a phoenix plan file")
    if "plan_key" not in state.model_fields_set:
        raise PhoenixError(f"{path}: the state has no plan key, so this plan was not made against it; {AGAIN}")
    mac = data.get("mac")
    if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(data, state.plan_key)):
        raise PhoenixError(f"{path}: the saved plan was changed after 'phoenix plan' wrote it, or was made "
                           f"against another state (its MAC does not verify); {AGAIN}")
    if data.get("state_lineage") != state.lineage:
        raise PhoenixError(f"{path}: the plan belongs to state lineage {printable(data.get('state_lineage'))}, "
                           f"not {state.lineage}; {AGAIN}")
    return Plan.load_data(data, path)


def check_narrowed(saved: Plan, rebuilt: Plan) -> None:
    """Refuse any saved step that phoenix would not derive now from the desired file (see module doc)."""
    for rc in saved.resource_changes:
        for step in rc.steps:
            if isinstance(step, Configure):
                foreign = sorted(set(step.attributes) - set(CONFIGURED))
                if foreign:
                    raise PhoenixError(f"saved plan: {rc.address} would write {', '.join(map(printable, foreign))}, "
                                       f"which is not a setting phoenix manages; refusing the plan")
        if not rc.actionable:
            continue
        fresh = rebuilt.change_for(rc.vmid)
        if fresh is None or (fresh.address, fresh.action) != (rc.address, rc.action):
            raise PhoenixError(f"saved plan: phoenix would not {rc.action} {rc.address} now; {AGAIN}")
        if fresh.steps != rc.steps or fresh.depends_on != rc.depends_on or fresh.blocked != rc.blocked:
            differing = next((f"step {i + 1} ({getattr(s, 'op', '?')})" for i, (s, t) in
                              enumerate(zip(rc.steps, fresh.steps)) if s != t), "its list of steps")
            raise PhoenixError(f"saved plan: {rc.address}'s {differing} is not what the desired file produces; "
                               f"the plan was edited or the cluster changed; {AGAIN}")
