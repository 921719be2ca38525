"""The operations behind each plan step.  Every one is idempotent: it first looks at what PVE has
and does nothing when that already matches, so re-running after a crash is always safe.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

from phoenix.apply.recovery import await_vm, clone_owned
from phoenix.diff.attributes import BY_NAME, configure_params
from phoenix.diff.codecs import GIB, Observed, disk_size_bytes
from phoenix.errors import PhoenixError
from phoenix.plan.documents import KNOWN_AFTER_APPLY, render_documents
from phoenix.plan.model import ResourceChange
from phoenix.plan.steps import Clone, Configure, DeliverUserData, Op, ProvisionTemplate, Resize, Step, TemplateOutputs
from phoenix.pve import locks as pve_locks
from phoenix.pve import propstr
from phoenix.pve.answer import str_field
from phoenix.pve.client import PVEApiError, PVEClient
from phoenix.pve.locks import StaleLockError

if TYPE_CHECKING:
    from phoenix.apply.delivery import SnippetDelivery
    from phoenix.apply.journal import Journal
    from phoenix.desired.spec import DesiredConfig, TemplateSpec, VMSpec
    from phoenix.template.provision import TemplateResult

SHUTDOWN_TIMEOUT_S = 60
LOCK_WAIT_S = 120


class Reporter(Protocol):
    """How apply reports progress (``phoenix.apply.report.ApplyReporter`` on a console)."""

    def chain_started(self, rc: ResourceChange) -> None: ...
    def chain_finished(self, rc: ResourceChange, seconds: float) -> None: ...
    def chain_skipped(self, rc: ResourceChange, because: str) -> None: ...
    def step_started(self, rc: ResourceChange, step: Step) -> None: ...
    def step_finished(self, rc: ResourceChange, step: Step, seconds: float) -> None: ...
    def step_failed(self, rc: ResourceChange, step: Step, message: str) -> None: ...
    def progress(self, rc: ResourceChange, message: str) -> None: ...
    def note(self, message: str) -> None: ...


@dataclass
class ApplyRuntime:
    """What all chains of one apply share."""

    client: PVEClient
    cfg: "DesiredConfig"
    journal: "Journal"
    reporter: "Reporter"
    snippets: "SnippetDelivery"
    provision_template: Callable[[PVEClient, "TemplateSpec", Callable[[str], None]], "TemplateResult"]
    unlock_stale: bool = False                      # --unlock-stale: clear locks of our VMs whose task died
    stop: threading.Event = field(default_factory=threading.Event)  # set on Ctrl-C: start no further step

    @property
    def lineage(self) -> str:
        """This state's lineage: the ownership marker every VM phoenix creates carries."""
        return str(self.journal.state.lineage)


@dataclass
class ChainContext:
    """One resource's chain.  It remembers the config and power state it last saw or made, so the
    steps of a fresh clone do not ask PVE again for what this chain already knows.

    ``inputs`` are the outputs of the chains this one depends on (finished before it was
    submitted, so nothing here is shared with a running chain); ``outputs`` is what it hands on."""

    runtime: ApplyRuntime
    rc: ResourceChange
    node: str
    inputs: Mapping[int, TemplateOutputs] = field(default_factory=dict)
    outputs: TemplateOutputs | None = None
    known_config: dict[str, Any] | None = None     # without "digest" once this chain changed it
    known_status: str | None = None
    instance_before_reboot: str | None = None      # the guest's cloud-init instance-id before a reboot

    @property
    def client(self) -> PVEClient:
        return self.runtime.client

    @property
    def path(self) -> str:
        return f"/nodes/{self.node}/qemu/{self.rc.vmid}"

    def config(self) -> dict[str, Any]:
        if self.known_config is None:
            self.known_config = self.client.get_dict(f"{self.path}/config")
        return self.known_config

    def changed_config(self, **values: Any) -> None:
        """This chain wrote the config: keep what it knows, but its digest is no longer current."""
        if self.known_config is not None:
            self.known_config.pop("digest", None)
            self.known_config.update(values)

    def status(self) -> str | None:
        """``running``/``stopped``, or None when the VM does not exist."""
        if self.known_status is not None:
            return self.known_status
        try:
            return str_field(self.client.get_dict(f"{self.path}/status/current"), "status",
                             f"GET {self.path}/status/current", "data")
        except PVEApiError as exc:
            if "does not exist" in exc.message:
                return None
            raise

    def vm(self) -> "VMSpec":
        vm = self.runtime.cfg.vm(self.rc.vmid)
        if vm is None:
            raise PhoenixError(f"VM {self.rc.vmid} is not declared in the desired-state file")
        return vm

    def progress(self, message: str) -> None:
        self.runtime.reporter.progress(self.rc, message)

    def done(self, attributes: dict[str, Any] | None = None, **fields: Any) -> None:
        """Record in the state what the step just made true (at once: a crash after it loses nothing)."""
        self.runtime.journal.record(self.rc.vmid, attributes, **fields)


# --- templates ------------------------------------------------------------------------------------

def provision_template(ctx: ChainContext, step: ProvisionTemplate) -> None:
    spec = ctx.runtime.cfg.template(step.vmid)
    if spec is None:
        raise PhoenixError(f"template {step.vmid} is not declared in the desired-state file")
    ctx.runtime.journal.begin(spec.vmid, "template", spec.name, ctx.node)
    try:
        result = ctx.runtime.provision_template(ctx.client, spec, ctx.progress)
    except StaleLockError:
        if not ctx.runtime.unlock_stale:
            raise
        # --unlock-stale: clear the dead create's lock, remove its placeholder, build the template again.
        await_vm(ctx.client, spec.vmid, ctx.runtime.lineage, ctx.progress, unlock_stale=True)
        result = ctx.runtime.provision_template(ctx.client, spec, ctx.progress)
    ctx.outputs = TemplateOutputs(agent_baked=bool(result.agent_baked))
    ctx.done({"name": spec.name, "image": spec.image.url, "agent_baked": ctx.outputs.agent_baked},
             node=result.node or ctx.node)


# --- VM lifecycle ----------------------------------------------------------------------------------

def clone(ctx: ChainContext, step: Clone) -> None:
    node = step.target or step.source_node
    ctx.runtime.journal.begin(ctx.rc.vmid, "vm", step.name, node, template_vmid=step.source)
    ctx.node = node
    runtime = ctx.runtime
    # The plan saw a clone of ours unfinished at this VMID: wait for it (or name its dead task). Else the
    # VMID was free when this run read the cluster; whoever took it since (another client, or a clone
    # request of a killed run that PVE executed late) makes the clone fail with "already exists",
    # which clone_owned settles by reading back. No per-VM /cluster/resources read.
    config = None
    if step.resume:
        config = await_vm(ctx.client, ctx.rc.vmid, runtime.lineage, ctx.progress, source_vmid=step.source,
                          unlock_stale=runtime.unlock_stale)
    if config is None:
        params: dict[str, Any] = {"newid": ctx.rc.vmid, "name": step.name, "full": 1 if step.full else 0}
        if step.target:
            params["target"] = step.target
        if step.storage:
            params["storage"] = step.storage
        ctx.progress(f"cloning {'full' if step.full else 'linked'} from template {step.source}")
        clone_owned(ctx.client, step.source_node, step.source, params, runtime.lineage, ctx.progress)
        config = wait_unlocked(ctx)
        ctx.known_status = "stopped"          # a clone starts stopped; nothing else touches it yet
    ctx.known_config = config
    ctx.done({"name": step.name}, node=node, template_vmid=step.source)


def wait_unlocked(ctx: ChainContext, timeout: float = LOCK_WAIT_S) -> dict[str, Any]:
    """PVE holds ``lock: clone`` until the clone task ends; wait for it to clear (bounded); a lock
    whose task died is reported at once (phoenix.pve.locks)."""
    config: dict[str, Any] = pve_locks.wait_unlocked(ctx.client, ctx.node, ctx.rc.vmid, timeout=timeout,
                                                     on_wait=ctx.progress)
    ctx.known_config = config
    return config


def resize(ctx: ChainContext, step: Resize) -> None:
    want = step.size_gb * GIB
    have = disk_size_bytes(ctx.config(), step.disk) or 0
    if have > want:
        raise PhoenixError(f"VM {ctx.rc.vmid}: {step.disk} is {have / GIB:g} GiB, larger than the "
                           f"declared {step.size_gb} GiB; PVE cannot shrink disks")
    if have < want:
        ctx.progress(f"resizing {step.disk} to {step.size_gb}G")
        ctx.client.run_task("PUT", f"{ctx.path}/resize", disk=step.disk, size=f"{step.size_gb}G")
        drive = propstr.parse_drive(ctx.config()[step.disk])
        drive["size"] = f"{step.size_gb}G"
        ctx.changed_config(**{step.disk: propstr.format_drive(drive)})
    name = "disk_size_gb" if step.disk == "scsi0" else step.disk
    read = BY_NAME[name].read
    ctx.done({name: read(Observed(ctx.config())) if read else step.size_gb})


def configure(ctx: ChainContext, step: Configure) -> None:
    """One config write for every configured attribute (None = remove the option); the registry
    (``phoenix.diff.attributes``) says how each one is written."""
    config = ctx.config()
    params = configure_params(step.attributes, config)
    volumes = {str(file) for k in step.destroy_volumes if config.get(k)
               for file in [propstr.parse_drive(str(config[k])).get("file")] if file}
    if params:
        ctx.client.put(f"{ctx.path}/config", digest=config.get("digest"), **params)
        ctx.known_config = None               # PVE normalises what it stores (MACs, drive options)
    if volumes:                               # PVE detached them as unusedN: deleting that entry frees the volume
        unused = [k for k, v in ctx.config().items() if k.startswith("unused") and v in volumes]
        if unused:
            ctx.progress(f"destroying the volumes of removed disks ({', '.join(sorted(volumes))})")
            ctx.client.put(f"{ctx.path}/config", delete=",".join(sorted(unused)))
            ctx.known_config = None
    ctx.done(dict(step.attributes))


def deliver_user_data(ctx: ChainContext, step: DeliverUserData) -> None:
    vm = ctx.vm()
    baked = step.agent_baked
    if baked is None:                         # the template was built by this apply: its chain's output
        template = ctx.inputs.get(step.template_vmid)
        if template is None:
            raise PhoenixError(f"VM {vm.vmid}: template {step.template_vmid} was to be built by this apply, "
                               "but its chain handed nothing on")
        baked = template.agent_baked
    docs = render_documents(ctx.runtime.cfg, vm, baked)
    fingerprint = ctx.runtime.journal.state.fingerprint(docs.fingerprint_source)
    if step.user_data not in (None, KNOWN_AFTER_APPLY) and step.user_data != fingerprint:
        raise PhoenixError(f"VM {vm.vmid}: its user-data changed since the plan was made; run plan again")
    ctx.runtime.snippets.deliver(ctx, vm, docs)
    ctx.done(fingerprints={"user_data": fingerprint})


def regenerate_cloudinit(ctx: ChainContext, step: Step) -> None:
    ctx.client.put(f"{ctx.path}/cloudinit")


def start(ctx: ChainContext, step: Step) -> None:
    if ctx.status() != "running":
        ctx.progress("starting")
        ctx.client.run_task("POST", f"{ctx.path}/status/start")
        ctx.known_status = "running"
    ctx.done({"power": "running"})


def stop(ctx: ChainContext, step: Step) -> None:
    """Shut down gracefully (guest agent or ACPI), forcing a stop after the timeout."""
    if ctx.status() == "running":
        ctx.progress(f"shutting down (up to {SHUTDOWN_TIMEOUT_S}s, then stop)")
        ctx.client.run_task("POST", f"{ctx.path}/status/shutdown", timeout=SHUTDOWN_TIMEOUT_S, forceStop=1)
        ctx.known_status = None
        if ctx.status() == "running":
            ctx.client.run_task("POST", f"{ctx.path}/status/stop")
        ctx.known_status = "stopped"
    ctx.done({"power": "stopped"} if ctx.rc.kind == "vm" else None)


def destroy(ctx: ChainContext, step: Step) -> None:
    """Idempotent: a VM already gone (an earlier, interrupted destroy) is simply done."""
    if ctx.status() is not None:
        params: dict[str, Any] = {"purge": 1, "destroy-unreferenced-disks": 1}
        try:
            ctx.client.run_task("DELETE", ctx.path, **params)
        except PVEApiError as exc:
            if "does not exist" not in exc.message:
                raise
            ctx.progress("already destroyed")
    ctx.known_status = ctx.known_config = None


def remove_user_data(ctx: ChainContext, step: Step) -> None:
    ctx.runtime.snippets.remove(ctx, ctx.rc.vmid)


def forget(ctx: ChainContext, step: Step) -> None:
    ctx.runtime.journal.forget(ctx.rc.vmid)


from phoenix.apply import guest as guest_steps  # noqa: E402 - its steps reuse start/stop above

Handler = Callable[[ChainContext, Any], None]

# Every Op has exactly one handler (tests/apply checks that none is missing).
STEPS: dict[Op, Handler] = {
    Op.PROVISION_TEMPLATE: provision_template,
    Op.CLONE: clone,
    Op.RESIZE: resize,
    Op.CONFIGURE: configure,
    Op.DELIVER_USER_DATA: deliver_user_data,
    Op.REGENERATE_CLOUDINIT: regenerate_cloudinit,
    Op.START: start,
    Op.STOP: stop,
    Op.REBOOT: guest_steps.reboot,
    Op.WAIT_GUEST: guest_steps.wait_guest,
    Op.REVERT_PENDING: guest_steps.revert_pending,
    Op.DESTROY: destroy,
    Op.REMOVE_USER_DATA: remove_user_data,
    Op.FORGET: forget,
}

__all__ = ["ApplyRuntime", "ChainContext", "STEPS"]
