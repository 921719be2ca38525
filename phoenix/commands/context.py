"""What every command works with: where the files are, which PVE (the injected environment), the
consoles, and the facts it reads — the desired file, the state, and the cluster, read once.
"""

from __future__ import annotations

import contextlib
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterable

from rich.console import Console

from phoenix.commands.environment import Connection, Environment
from phoenix.commands.gcpause import gc_paused
from phoenix.desired.spec import DesiredConfig
from phoenix.pve.inventory import Inventory, OnFacts
from phoenix.state.model import State
from phoenix.state.store import StateStore
from phoenix.template.simulated import OfflineStandIns


@dataclass
class Context:
    config: Path
    state: Path
    environment: Environment
    out: Console = field(default_factory=lambda: Console(highlight=False, soft_wrap=True))
    err: Console = field(default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True))

    def store(self) -> StateStore:
        return StateStore(self.state)


@dataclass
class Facts:
    cfg: DesiredConfig
    state: State
    inventory: Inventory
    desired_fingerprint: str
    outdated_templates: dict[int, str] = field(default_factory=dict)   # vmid -> why


def read_facts(ctx: Context, conn: Connection, state: State, extra_vmids: Iterable[int] = (),
               guest: bool = False, watch: Callable[[DesiredConfig, list[int]], OnFacts] | None = None) -> Facts:
    """Desired (validated against the cluster's templates), recorded and actual state.

    One ``GET /cluster/resources``, then the configs of the VMs the file declares, the state records
    and ``extra_vmids``; with ``guest``, also what the guest agents of the declared running VMs report.
    ``watch(cfg, vmids)``, once the file is valid, gives what sees each VM's facts as they arrive
    (``read_inventory``'s ``on_facts``).
    """
    from phoenix.desired import ConfigError, load_desired
    from phoenix.pve.inventory import read_inventory, template_vmids

    # The listing is fetched while the file is read and validated (the CPU-bound part); the file's
    # cross-checks wait for it. A PVE error still comes before the file's problems.
    with ThreadPoolExecutor(max_workers=1) as pool:
        listing = pool.submit(conn.client.get_list, "/cluster/resources")
        try:
            with gc_paused():
                cfg = load_desired(ctx.config, existing_templates=lambda: template_vmids(listing.result()))
        except ConfigError:
            template_vmids(listing.result())
            raise
        resources = listing.result()
    wanted = {t.vmid for t in cfg.templates} | {v.vmid for v in cfg.vms} | {v.clone_from_vmid for v in cfg.vms}
    wanted |= {int(k) for k in state.resources} | set(extra_vmids)
    vmids = sorted(wanted)
    with gc_paused() if watch is not None else contextlib.nullcontext():   # the watcher builds long-lived data
        inventory = read_inventory(conn.client, vmids, resources=resources,
                                   on_facts=watch(cfg, vmids) if watch is not None else None)
    if guest:
        from phoenix.pve.guest import read_guests

        inventory.guest_facts = read_guests(conn.client, inventory, [v.vmid for v in cfg.vms])
    return Facts(cfg, state, inventory, desired_fingerprint(ctx.config, cfg),
                 outdated_templates(cfg, inventory, conn.stand_ins))


def outdated_templates(cfg: DesiredConfig, inventory: Inventory, stand_ins: OfflineStandIns | None) -> dict[int, str]:
    """Declared templates whose image checksum moved on upstream since phoenix built them (reported, never
    rebuilt: clones may still use them).  Costs no PVE call; at most one short sums-file fetch each."""
    from phoenix.template.checksum import fetch_text
    from phoenix.template.status import compare_with_spec

    found = {}
    for spec in cfg.templates:
        facts = inventory.vms.get(spec.vmid)
        if facts is not None and facts.template:
            status = compare_with_spec(spec, facts.config, facts.node, fetch=partial(fetch_text, timeout=5),
                                       stand_ins=stand_ins)
            if status.outdated:
                found[spec.vmid] = status.reason
    return found


def desired_fingerprint(path: Path, cfg: DesiredConfig) -> str:
    """Hash of the desired file and the user feature files it may use (saved plans go stale on change)."""
    digest = hashlib.sha256(path.read_bytes())
    features = Path(getattr(cfg, "base_dir", path.parent)) / "features"
    if features.is_dir():
        for item in sorted(features.iterdir()):
            if item.is_file():
                digest.update(item.name.encode() + b"\0" + item.read_bytes())
    return digest.hexdigest()
