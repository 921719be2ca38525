"""The commands' flows: connect, read facts, compute, render, apply.  ``cli.py`` only parses options.

Every flow reads the cluster once (``/cluster/resources`` + the configs phoenix needs) and holds
the state lock for the whole of an apply or destroy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from rich.console import Console

from phoenix.errors import PhoenixError
from phoenix.text import markup_safe

SIM_TASK_SCALE_ENV = "PHOENIX_SIM_TASK_SCALE"
SIM_DATA_DIR_ENV = "PHOENIX_SIM_DATA_DIR"
DEFAULT_SIM_TASK_SCALE = 0.1


@dataclass
class GlobalOptions:
    config: Path
    state: Path
    sim: bool = False

    @property
    def sim_dir(self) -> Path:
        return self.state.parent / "sim"


def console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


# --- connecting --------------------------------------------------------------------------------

@dataclass
class Connection:
    """A client plus what phoenix knows about the PVE behind it."""

    client: Any
    simulated: bool = False
    storage_roots: Any = None       # (node, storage) -> Path, when phoenix shares the host's storage dirs


@contextlib.contextmanager
def connect(opts: GlobalOptions) -> Iterator[Connection]:
    """A PVEClient for the environment's PVE, or for the embedded simulator with ``--sim``."""
    from phoenix.pve.client import PVEClient
    from phoenix.pve.settings import ConnectionSettings

    with contextlib.ExitStack() as stack:
        roots = None
        if opts.sim:
            from phoenix.sim.server import SimServer

            scale = float(os.environ.get(SIM_TASK_SCALE_ENV, DEFAULT_SIM_TASK_SCALE))
            guest_image = os.environ.get("PHOENIX_SIM_GUEST_IMAGE") or None   # real QEMU guests (phoenix.sim.qemu)
            server = stack.enter_context(SimServer(opts.sim_dir, task_scale=scale,
                                                   guest_image=Path(guest_image) if guest_image else None))
            err_console().print(f"[dim]using the embedded Proxmox VE simulator ({opts.sim_dir}, {server.endpoint})"
                                f"[/dim]")
            settings = ConnectionSettings.from_env({
                "PROXMOX_VE_ENDPOINT": server.endpoint,
                "PROXMOX_VE_API_TOKEN": server.api_token,
                "PROXMOX_VE_CA_FILE": str(server.ca_file),
            })
            model = server.sim.model
            roots = lambda node, storage: model.storage_root(storage, node)  # noqa: E731
        else:
            settings = ConnectionSettings.from_env()
            sim_dir = os.environ.get(SIM_DATA_DIR_ENV)
            if sim_dir:
                # Written by `phoenix sim serve` into its env file: phoenix shares that simulator's host.
                from phoenix.apply.delivery import sim_storage_roots

                roots = sim_storage_roots(Path(sim_dir))
        client = PVEClient.connect(settings)
        stack.callback(client.close)
        yield Connection(client, simulated=roots is not None, storage_roots=roots)


# --- reading facts ------------------------------------------------------------------------------

@dataclass
class Facts:
    cfg: Any
    state: Any
    inventory: Any
    desired_fingerprint: str
    outdated_templates: dict[int, str] = field(default_factory=dict)   # vmid -> why


def read_facts(opts: GlobalOptions, conn: "Connection", state: Any, extra_vmids: Iterable[int] = (),
               guest: bool = False) -> Facts:
    """Desired (validated against the cluster's templates), recorded and actual state.

    Configs are read for the VMs the file declares, the state records and ``extra_vmids``;
    with ``guest``, also what the guest agents of the declared running VMs report.
    """
    from phoenix.desired import load_desired
    from phoenix.pve.inventory import read_inventory, template_vmids

    client = conn.client
    resources = client.get_list("/cluster/resources")
    existing_templates = template_vmids(resources)
    cfg = load_desired(opts.config, existing_templates=existing_templates)
    wanted = {t.vmid for t in cfg.templates} | {v.vmid for v in cfg.vms} | {v.clone_from_vmid for v in cfg.vms}
    wanted |= {int(k) for k in state.resources} | set(extra_vmids)
    inventory = read_inventory(client, sorted(wanted), resources=resources)
    if guest:
        from phoenix.pve.guest import read_guests

        inventory.guest_facts = read_guests(client, inventory, [v.vmid for v in cfg.vms])
    return Facts(cfg, state, inventory, desired_fingerprint(opts.config, cfg),
                 outdated_templates(cfg, inventory, conn.simulated))


def outdated_templates(cfg: Any, inventory: Any, simulated: bool) -> dict[int, str]:
    """Declared templates whose image checksum moved on upstream since phoenix built them (reported, never
    rebuilt: clones may still use them).  Costs no PVE call; at most one short sums-file fetch each."""
    from functools import partial

    from phoenix.template.checksum import fetch_text
    from phoenix.template.status import compare_with_spec

    found = {}
    for spec in cfg.templates:
        facts = inventory.vms.get(spec.vmid)
        if facts is not None and facts.template:
            status = compare_with_spec(spec, facts.config, facts.node, fetch=partial(fetch_text, timeout=5),
                                       simulated=simulated)
            if status.outdated:
                found[spec.vmid] = status.reason
    return found


def desired_fingerprint(path: Path, cfg: Any) -> str:
    """Hash of the desired file and the user feature files it may use (saved plans go stale on change)."""
    digest = hashlib.sha256(path.read_bytes())
    features = Path(getattr(cfg, "base_dir", path.parent)) / "features"
    if features.is_dir():
        for item in sorted(features.iterdir()):
            if item.is_file():
                digest.update(item.name.encode() + b"\0" + item.read_bytes())
    return digest.hexdigest()


def state_store(opts: GlobalOptions) -> Any:
    from phoenix.state.store import StateStore

    return StateStore(opts.state)


# --- plan ----------------------------------------------------------------------------------------

def plan_command(opts: GlobalOptions, targets: list[int], out: Path | None, as_json: bool,
                 detailed_exitcode: bool, allow_reboot: bool, replace: list[int], guest: bool = False,
                 guest_timeout: int | None = None) -> int:
    from phoenix.plan.build import PlanOptions, build_plan
    from phoenix.plan.render import plan_json, render_plan

    from phoenix.plan.seal import save_sealed, sealed_state

    store = state_store(opts)
    state = store.read() if out is None else sealed_state(store)   # a saved plan needs the state's key on disk
    with connect(opts) as conn:
        facts = read_facts(opts, conn, state, guest=guest)
    plan = build_plan(facts.cfg, state, facts.inventory,
                      PlanOptions(targets=set(targets), allow_reboot=allow_reboot, replace=set(replace),
                                  guest_timeout=guest_timeout),
                      desired_fingerprint=facts.desired_fingerprint, outdated_templates=facts.outdated_templates)
    if as_json:
        print(plan_json(plan))
    else:
        render_plan(plan, console())
    if out is not None:
        save_sealed(plan, out, state)
        if not as_json:
            console().print(f"\nSaved the plan to {markup_safe(out)}. Apply exactly it with: phoenix apply {markup_safe(out)}")
    return 2 if detailed_exitcode and plan.has_changes else 0


# --- apply / destroy -------------------------------------------------------------------------------

def apply_command(opts: GlobalOptions, plan_file: Path | None, targets: list[int], auto_approve: bool,
                  parallelism: int, allow_reboot: bool, replace: list[int], per_node: int | None = None,
                  guest: bool = False, guest_timeout: int | None = None, unlock_stale: bool = False) -> int:
    from phoenix.plan.build import PlanOptions, build_plan
    from phoenix.plan.seal import check_narrowed, load_sealed

    store = state_store(opts)
    with store.lock("apply"):
        state = store.read()
        with connect(opts) as conn:
            facts = read_facts(opts, conn, state, guest=guest and plan_file is None)
            if plan_file is not None:
                plan = load_sealed(plan_file, state)      # MAC and lineage: refuses an edited plan
                check_saved_plan(plan, facts)
                rebuilt = build_plan(facts.cfg, state, facts.inventory, PlanOptions(
                    targets=set(plan.options.get("targets", [])), allow_reboot=bool(plan.options.get("allow_reboot")),
                    replace=set(plan.options.get("replace", []))), desired_fingerprint=facts.desired_fingerprint,
                    outdated_templates=facts.outdated_templates)
                check_narrowed(plan, rebuilt)             # only steps the desired file produces run
            else:
                plan = build_plan(facts.cfg, state, facts.inventory,
                                  PlanOptions(targets=set(targets), allow_reboot=allow_reboot, replace=set(replace),
                                              guest_timeout=guest_timeout),
                                  desired_fingerprint=facts.desired_fingerprint,
                                  outdated_templates=facts.outdated_templates)
            return run_plan(plan, facts, store, conn, approve=auto_approve or plan_file is not None,
                            parallelism=parallelism, per_node=per_node, unlock_stale=unlock_stale)


def destroy_command(opts: GlobalOptions, vmids: list[int], auto_approve: bool, force: bool) -> int:
    from phoenix.plan.build import build_destroy_plan

    store = state_store(opts)
    with store.lock("destroy"):
        state = store.read()
        with connect(opts) as conn:
            facts = read_facts(opts, conn, state, extra_vmids=vmids)
            plan = build_destroy_plan(vmids, state, facts.inventory, force=force)
            return run_plan(plan, facts, store, conn, approve=auto_approve, parallelism=4)


def run_plan(plan: Any, facts: Facts, store: Any, conn: Connection, approve: bool, parallelism: int,
             per_node: int | None = None, unlock_stale: bool = False) -> int:
    """Show ``plan``, ask for ``yes``, execute it and print the summary; the exit code."""
    from phoenix.apply.delivery import SnippetDelivery
    from phoenix.apply.executor import execute
    from phoenix.apply.journal import Journal
    from phoenix.apply.report import ConsoleReporter
    from phoenix.apply.steps import ApplyRuntime
    from phoenix.plan.render import render_plan
    from phoenix.apply.recovery import sweep_template_leftovers
    from phoenix.template.provision import provision_for_plan

    out = console()
    render_plan(plan, out)
    if plan.operation != "destroy":
        sweep_template_leftovers(conn.client, facts.cfg, facts.inventory, facts.state.lineage,
                                 lambda line: out.print(f"[dim]{line}[/dim]"))
    if not any(rc.actionable for rc in plan.resource_changes):
        return 0
    if not approve and not confirm(out, plan.operation):
        out.print("\nDestroy cancelled." if plan.operation == "destroy" else "\nApply cancelled.")
        return 1
    out.print()
    def provision(client: Any, spec: Any, reporter: Any) -> Any:
        return provision_for_plan(client, spec, reporter, owner=facts.state.lineage, simulated=conn.simulated or None)

    runtime = ApplyRuntime(client=conn.client, cfg=facts.cfg, journal=Journal(store, facts.state),
                           reporter=ConsoleReporter(out),
                           snippets=SnippetDelivery(facts.cfg, conn.client, conn.storage_roots),
                           provision_template=provision, unlock_stale=unlock_stale)
    result = execute(plan, runtime, parallelism=parallelism, per_node=per_node)
    counts = plan.counts(only=result.succeeded)
    verb = "Destroy" if plan.operation == "destroy" else "Apply"
    if result.ok:
        out.print(f"\n[bold green]{verb} complete![/bold green] Resources: {counts['add']} added, "
                  f"{counts['change']} changed, {counts['destroy']} destroyed. [{result.seconds:.1f}s]")
        return 0
    out.print(f"\n[bold red]{verb} finished with errors[/bold red] ({len(result.failed)} failed). Resources: "
              f"{counts['add']} added, {counts['change']} changed, {counts['destroy']} destroyed.")
    for chain in result.failed:
        err_console().print(f"error: {chain.address}: {markup_safe(chain.error)}")
    return 1


def confirm(out: Console, operation: str) -> bool:
    what = "destroy these resources" if operation == "destroy" else "perform these actions"
    out.print(f"\nDo you want to {what}? Only 'yes' will be accepted.")
    if not sys.stdin.isatty() and sys.stdin.closed:
        return False
    try:
        answer = input("  Enter a value: ")
    except EOFError:
        return False
    return answer.strip() == "yes"


def check_saved_plan(plan: Any, facts: Facts) -> None:
    """Refuse a saved plan whose world moved on: state written since, file edited, or PVE changed."""
    state = facts.state
    never_written = plan.state_serial == 0 and state.serial == 0   # no state file then or now
    if not never_written and (plan.state_lineage != state.lineage or plan.state_serial != state.serial):
        raise PhoenixError(f"saved plan is stale: the state changed since it was made (serial "
                           f"{plan.state_serial} → {state.serial}); run 'phoenix plan' again")
    if plan.desired_fingerprint and plan.desired_fingerprint != facts.desired_fingerprint:
        raise PhoenixError("saved plan is stale: the desired-state file changed since it was made; run 'phoenix plan' again")
    for rc in plan.resource_changes:
        facts_now = facts.inventory.vms.get(rc.vmid)
        if rc.action == "create" and facts_now is not None:
            raise PhoenixError(f"saved plan is stale: {rc.address} now exists in PVE; run 'phoenix plan' again")
        if rc.digest and (facts_now is None or facts_now.config.get("digest") != rc.digest):
            raise PhoenixError(f"saved plan is stale: {rc.address} changed in PVE since the plan was made; "
                               f"run 'phoenix plan' again")


# --- import / unlock ----------------------------------------------------------------------------------

def import_command(opts: GlobalOptions, vmid: int) -> int:
    """Adopt an existing VM into the state without changing its settings; the next plan shows what differs.

    Adoption writes this state's ownership marker into the VM's description (the only change), so
    from then on phoenix may change or delete it; a VM another phoenix state owns is refused."""
    from phoenix.diff.views import actual_view
    from phoenix.pve.ownership import not_owned_message, ownership, with_marker
    from phoenix.state.model import ResourceState

    store = state_store(opts)
    with store.lock("import"):
        state = store.read()
        with connect(opts) as conn:
            facts = read_facts(opts, conn, state, extra_vmids=[vmid])
            vm_facts = facts.inventory.vms.get(vmid)
            if vm_facts is None:
                raise PhoenixError(f"VM {vmid} does not exist in the cluster")
            owned = ownership(vm_facts.config, state.lineage, vmid)
            if owned.ours and state.get(vmid) is not None:
                raise PhoenixError(f"VM {vmid} is already managed by phoenix")
            if owned.verdict == "other":
                raise PhoenixError(not_owned_message(vmid, vm_facts.name, vm_facts.node, owned)
                                   + "; phoenix import does not take a VM from another state")
            if vm_facts.lock:
                raise PhoenixError(f"VM {vmid} is locked ({vm_facts.lock}); import it once its task has finished")
            if state.serial == 0:
                store.write(state)           # the marker names this state's lineage: keep it on disk first
            if not owned.ours:
                conn.client.put(f"/nodes/{vm_facts.node}/qemu/{vmid}/config",
                                description=with_marker(vm_facts.config.get("description"), state.lineage, vmid))
        kind = "template" if vm_facts.template else "vm"
        declared = next((v for v in facts.cfg.vms if v.vmid == vmid), None)
        template_vmid = declared.clone_from_vmid if declared else None
        attributes = actual_view(vm_facts.config, vm_facts.status) if kind == "vm" else {"name": vm_facts.name}
        state.put(ResourceState(kind=kind, vmid=vmid, name=vm_facts.name or str(vmid), node=vm_facts.node,
                                template_vmid=template_vmid, attributes=attributes))
        store.write(state)
    console().print(f"Imported {kind} {vmid} ({markup_safe(vm_facts.name)}) on node {markup_safe(vm_facts.node)}. "
                    f"Run 'phoenix plan' to see how it differs from the file.")
    return 0


def force_unlock_command(opts: GlobalOptions, lock_id: str) -> int:
    state_store(opts).force_unlock(lock_id)
    console().print(f"Released state lock {lock_id}.")
    return 0
