"""The operations behind each plan step.  Every one is idempotent: it first looks at what PVE has
and does nothing when that already matches, so re-running after a crash is always safe.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from phoenix.diff.views import GIB, disk_size_bytes
from phoenix.errors import PhoenixError
from phoenix.plan.documents import KNOWN_AFTER_APPLY, render_documents
from phoenix.plan.model import ResourceChange, Step
from phoenix.pve import propstr
from phoenix.pve.client import PVEApiError

SHUTDOWN_TIMEOUT_S = 60
LOCK_WAIT_S = 120


@dataclass
class ApplyRuntime:
    """What all chains of one apply share."""

    client: Any
    cfg: Any
    journal: Any
    reporter: Any
    snippets: Any                                   # snippet backend (phoenix.snippets)
    provision_template: Callable[..., Any]          # (client, spec, reporter=callable(line)) -> TemplateResult
    agent_baked: dict[int, bool] = field(default_factory=dict)   # template vmid -> agent in image
    stop: threading.Event = field(default_factory=threading.Event)  # set on Ctrl-C: start no further step


@dataclass
class ChainContext:
    """One resource's chain.  It remembers the config and power state it last saw or made, so the
    steps of a fresh clone do not ask PVE again for what this chain already knows."""

    runtime: ApplyRuntime
    rc: ResourceChange
    node: str
    known_config: dict[str, Any] | None = None     # without "digest" once this chain changed it
    known_status: str | None = None

    @property
    def client(self) -> Any:
        return self.runtime.client

    @property
    def path(self) -> str:
        return f"/nodes/{self.node}/qemu/{self.rc.vmid}"

    def config(self) -> dict[str, Any]:
        if self.known_config is None:
            self.known_config = self.client.get(f"{self.path}/config")
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
            return self.client.get(f"{self.path}/status/current")["status"]
        except PVEApiError as exc:
            if "does not exist" in exc.message:
                return None
            raise

    def vm(self) -> Any:
        return self.runtime.cfg.vm(self.rc.vmid)

    def progress(self, message: str) -> None:
        self.runtime.reporter.progress(self.rc, message)

    def done(self, step: Step, attributes: dict[str, Any] | None = None, **fields: Any) -> None:
        self.runtime.journal.step_done(self.rc.vmid, step.op, attributes, **fields)


# --- templates ------------------------------------------------------------------------------------

def provision_template(ctx: ChainContext, step: Step) -> None:
    spec = ctx.runtime.cfg.template(step.args["vmid"])
    ctx.runtime.journal.begin(spec.vmid, "template", spec.name, ctx.node)
    result = ctx.runtime.provision_template(ctx.client, spec, ctx.progress)
    baked = bool(getattr(result, "agent_baked", False))
    ctx.runtime.agent_baked[spec.vmid] = baked
    ctx.done(step, {"name": spec.name, "image": spec.image.url, "agent_baked": baked},
             node=getattr(result, "node", None) or ctx.node)


# --- VM lifecycle ----------------------------------------------------------------------------------

def clone(ctx: ChainContext, step: Step) -> None:
    args = step.args
    node = args.get("target") or args["source_node"]
    ctx.runtime.journal.begin(ctx.rc.vmid, "vm", args["name"], node, template_vmid=args["source"])
    ctx.node = node
    if ctx.status() is None:
        params = {"newid": ctx.rc.vmid, "name": args["name"], "full": 1 if args["full"] else 0}
        for key in ("target", "storage"):
            if args.get(key):
                params[key] = args[key]
        ctx.progress(f"cloning {'full' if args['full'] else 'linked'} from template {args['source']}")
        ctx.client.run_task("POST", f"/nodes/{args['source_node']}/qemu/{args['source']}/clone", **params)
    config = wait_unlocked(ctx)
    if not config.get("template"):
        ctx.known_status = "stopped"          # a clone starts stopped; nothing else touches it yet
    ctx.done(step, {"name": args["name"]}, node=node, template_vmid=args["source"])


def wait_unlocked(ctx: ChainContext, timeout: float = LOCK_WAIT_S) -> dict[str, Any]:
    """PVE holds ``lock: clone`` until the clone task ends; wait for it to clear (bounded)."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        config = ctx.client.get(f"{ctx.path}/config")
        if not config.get("lock"):
            ctx.known_config = config
            return config
        if time.monotonic() > deadline:
            raise PhoenixError(f"VM {ctx.rc.vmid} is still locked ({config['lock']}) after {timeout:.0f}s")
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def resize(ctx: ChainContext, step: Step) -> None:
    want = int(step.args["size_gb"]) * GIB
    have = disk_size_bytes(ctx.config(), step.args["disk"]) or 0
    if have > want:
        raise PhoenixError(f"VM {ctx.rc.vmid}: {step.args['disk']} is {have / GIB:g} GiB, larger than the "
                           f"declared {step.args['size_gb']} GiB; PVE cannot shrink disks")
    if have < want:
        ctx.progress(f"resizing {step.args['disk']} to {step.args['size_gb']}G")
        ctx.client.run_task("PUT", f"{ctx.path}/resize", disk=step.args["disk"], size=f"{step.args['size_gb']}G")
        drive = propstr.parse_drive(ctx.config()[step.args["disk"]])
        drive["size"] = f"{step.args['size_gb']}G"
        ctx.changed_config(**{step.args["disk"]: propstr.format_drive(drive)})
    ctx.done(step, {"disk_size_gb": step.args["size_gb"]})


def configure(ctx: ChainContext, step: Step) -> None:
    """One config write for hardware and cloud-init attributes (None = remove the option)."""
    attributes = step.args["attributes"]
    config = ctx.config()
    params: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is not None and key == "sshkeys":
            params["sshkeys"] = propstr.encode_sshkeys(value)
        elif key == "memory_mb":
            params["memory"] = value
        elif key == "network_bridge":
            net = propstr.parse_net(config["net0"]) if config.get("net0") else {"model": "virtio"}
            net["bridge"] = value
            params["net0"] = propstr.format_net(net)
        elif key == "agent":
            params["agent"] = "enabled=1" if value else "enabled=0"
        elif value is None:
            params.setdefault("delete", []).append(key)
        elif key == "tags":
            params["tags"] = ";".join(value)
        else:
            params[key] = value
    if "delete" in params:
        params["delete"] = ",".join(params["delete"])
    if params:
        ctx.client.put(f"{ctx.path}/config", digest=config.get("digest"), **params)
        ctx.known_config = None               # PVE normalises what it stores (MACs, drive options)
    ctx.done(step, dict(attributes))


def deliver_user_data(ctx: ChainContext, step: Step) -> None:
    vm = ctx.vm()
    # Known for every template: read with the inventory, or recorded when this apply provisioned it.
    baked = ctx.runtime.agent_baked.get(vm.clone_from_vmid)
    if baked is None:
        raise PhoenixError(f"VM {vm.vmid}: template {vm.clone_from_vmid} was not found when the apply began")
    docs = render_documents(ctx.runtime.cfg, vm, baked)
    fingerprint = ctx.runtime.journal.state.fingerprint(docs.fingerprint_source)
    planned = step.args.get("user_data")
    if planned not in (None, KNOWN_AFTER_APPLY) and planned != fingerprint:
        raise PhoenixError(f"VM {vm.vmid}: its user-data changed since the plan was made; run plan again")
    ctx.runtime.snippets.deliver(ctx, vm, docs)
    ctx.done(step, None, fingerprints={"user_data": fingerprint})


def regenerate_cloudinit(ctx: ChainContext, step: Step) -> None:
    ctx.client.put(f"{ctx.path}/cloudinit")
    ctx.done(step)


def start(ctx: ChainContext, step: Step) -> None:
    if ctx.status() != "running":
        ctx.progress("starting")
        ctx.client.run_task("POST", f"{ctx.path}/status/start")
        ctx.known_status = "running"
    ctx.done(step, {"power": "running"})


def stop(ctx: ChainContext, step: Step) -> None:
    """Shut down gracefully (guest agent or ACPI), forcing a stop after the timeout."""
    if ctx.status() == "running":
        ctx.progress(f"shutting down (up to {SHUTDOWN_TIMEOUT_S}s, then stop)")
        ctx.client.run_task("POST", f"{ctx.path}/status/shutdown", timeout=SHUTDOWN_TIMEOUT_S, forceStop=1)
        ctx.known_status = None
        if ctx.status() == "running":
            ctx.client.run_task("POST", f"{ctx.path}/status/stop")
        ctx.known_status = "stopped"
    ctx.done(step, {"power": "stopped"} if ctx.rc.kind == "vm" else None)


def reboot(ctx: ChainContext, step: Step) -> None:
    stop(ctx, step)
    start(ctx, step)


def wait_agent(ctx: ChainContext, step: Step) -> None:
    """Poll ``agent/ping`` until the guest agent answers (bounded, with progress every ~10 s).

    Poll timing learns how long agents took to come up so far in this run (phoenix.pve.polling)."""
    timeout = float(step.args.get("timeout", 300))
    started = time.monotonic()
    last_report = last_miss = started
    intervals = ctx.client.durations.intervals("guest-agent", max_interval=2.0)
    while True:
        try:
            ctx.client.post(f"{ctx.path}/agent/ping")
            ctx.client.durations.record("guest-agent", (last_miss + time.monotonic()) / 2 - started)
            break
        except PVEApiError as exc:
            if "No QEMU guest agent configured" in exc.message:
                raise
            last_miss = time.monotonic()
            waited = last_miss - started
            if waited > timeout:
                raise PhoenixError(f"VM {ctx.rc.vmid}: guest agent did not answer within {timeout:.0f}s "
                                   f"({exc.message})") from None
            if last_miss - last_report >= 10:
                ctx.progress(f"waiting for the guest agent ({waited:.0f}s)")
                last_report = last_miss
        time.sleep(next(intervals))
    ctx.done(step)


def destroy(ctx: ChainContext, step: Step) -> None:
    if ctx.status() is not None:
        ctx.client.run_task("DELETE", ctx.path, purge=1, **{"destroy-unreferenced-disks": 1})
    ctx.known_status = ctx.known_config = None
    ctx.done(step)


def remove_user_data(ctx: ChainContext, step: Step) -> None:
    ctx.runtime.snippets.remove(ctx, ctx.rc.vmid)
    ctx.done(step)


def forget(ctx: ChainContext, step: Step) -> None:
    ctx.runtime.journal.forget(ctx.rc.vmid)


STEPS: dict[str, Callable[[ChainContext, Step], None]] = {
    "provision_template": provision_template,
    "clone": clone,
    "resize": resize,
    "configure": configure,
    "deliver_user_data": deliver_user_data,
    "regenerate_cloudinit": regenerate_cloudinit,
    "start": start,
    "stop": stop,
    "reboot": reboot,
    "wait_agent": wait_agent,
    "destroy": destroy,
    "remove_user_data": remove_user_data,
    "forget": forget,
}

__all__ = ["ApplyRuntime", "ChainContext", "STEPS"]
