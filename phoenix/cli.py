"""Command-line wiring: each command parses options and calls into ``phoenix.commands``; no logic lives here.

This is the one production module that may wire the simulator: ``--sim`` (or the env file of
``phoenix sim serve``) chooses its environment, which the commands receive like any other.
Heavy modules are imported inside the commands so that ``phoenix --help`` stays fast.
"""

from __future__ import annotations

import functools
import gc
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from typer.core import TyperOption


def _flag_type(self: TyperOption, ctx: Any) -> str | None:
    """A boolean flag takes no value, so --help shows no ``<bool>`` for it (typer 0.2x prints one)."""
    return None if self.is_flag else _option_type(self, ctx)


_option_type = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]

class _Typer(typer.Typer):
    """Every command turns a PhoenixError into one line on stderr and exit code 1 (never a traceback)."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:  # type: ignore[override]  # passes everything through
        register = super().command(*args, **kwargs)

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(fn)
            def wrapper(*a: Any, **kw: Any) -> Any:
                from phoenix.errors import PhoenixError
                from phoenix.text import printable

                try:
                    return fn(*a, **kw)
                except PhoenixError as exc:
                    typer.echo(f"error: {printable(exc)}", err=True)   # PVE's words, names: text, not commands
                    raise typer.Exit(exc.exit_code) from None

            register(wrapper)
            return fn

        return decorator


app = _Typer(
    help="Declarative Proxmox VE virtual machines from cloud-image templates.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
sim_app = _Typer(help="The built-in Proxmox VE simulator.", no_args_is_help=True)
template_app = _Typer(help="Cloud-image templates.", no_args_is_help=True)
app.add_typer(sim_app, name="sim")
app.add_typer(template_app, name="template")

DEFAULT_CONFIG = Path("desired/phoenix_vm_configs.json")
DEFAULT_STATE = Path("state/phoenix.state.json")
VMIDS_HELP = "Limit to these VMIDs (repeatable)."
GUEST_HELP = "Also read running VMs' guest agents (addresses, host name, feature results): a few calls per VM."
GUEST_TIMEOUT_HELP = "How long to wait for a started VM's guest (agent, cloud-init, features); default 900 s."


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Path = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="Desired-state file."),
    state: Path = typer.Option(DEFAULT_STATE, "--state", help="State file (what phoenix applied)."),
    sim: bool = typer.Option(False, "--sim", help="Use the embedded simulator (its cluster lives in state/sim/)."),
) -> None:
    """Declarative Proxmox VE virtual machines from cloud-image templates."""
    from phoenix.commands.context import Context
    from phoenix.sim.environment import environment_for

    ctx.obj = Context(config=config, state=state, environment=environment_for(sim, state))


@app.command()
def validate(ctx: typer.Context) -> None:
    """Check the desired-state file; print every problem, or a one-line summary."""
    from phoenix.desired.commands import validate_command

    raise typer.Exit(validate_command(ctx.obj.config))


@app.command()
def plan(
    ctx: typer.Context,
    target: list[int] = typer.Option([], "--target", help=VMIDS_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help="Save the plan for 'phoenix apply FILE'."),
    as_json: bool = typer.Option(False, "--json", help="Print the machine-readable plan."),
    detailed_exitcode: bool = typer.Option(False, "--detailed-exitcode",
                                           help="Exit 0 when converged, 2 when changes are pending, 1 on error."),
    allow_reboot: bool = typer.Option(False, "--allow-reboot", help="Plan changes that need a reboot."),
    replace: list[int] = typer.Option([], "--replace", help="Allow replacing this VMID (repeatable)."),
    guest: bool = typer.Option(False, "--guest", help=GUEST_HELP),
    guest_timeout: Optional[int] = typer.Option(None, "--guest-timeout", min=1, max=86400, help=GUEST_TIMEOUT_HELP),
) -> None:
    """Show what apply would change, and what changed outside phoenix."""
    from phoenix.commands.plan import PlanRequest, plan_command

    request = PlanRequest(targets=target, allow_reboot=allow_reboot, replace=replace, guest=guest,
                          guest_timeout=guest_timeout)
    raise typer.Exit(plan_command(ctx.obj, request, out=out, as_json=as_json, detailed_exitcode=detailed_exitcode))


@app.command()
def apply(
    ctx: typer.Context,
    plan_file: Optional[Path] = typer.Argument(None, help="A plan saved with 'phoenix plan --out'."),
    target: list[int] = typer.Option([], "--target", help=VMIDS_HELP),
    auto_approve: bool = typer.Option(False, "--auto-approve", help="Do not ask for 'yes'."),
    parallelism: int = typer.Option(4, "--parallelism", min=1, max=64, help="VM chains run at once."),
    per_node: Optional[int] = typer.Option(None, "--per-node", min=1, max=64,
                                           help="VM chains run at once on one node (default: --parallelism)."),
    allow_reboot: bool = typer.Option(False, "--allow-reboot", help="Reboot running VMs for changes that need it."),
    replace: list[int] = typer.Option([], "--replace", help="Allow replacing this VMID (repeatable)."),
    guest: bool = typer.Option(False, "--guest", help=GUEST_HELP),
    guest_timeout: Optional[int] = typer.Option(None, "--guest-timeout", min=1, max=86400, help=GUEST_TIMEOUT_HELP),
    unlock_stale: bool = typer.Option(False, "--unlock-stale",
                                      help="Clear config locks of phoenix's own VMs whose task has died "
                                           "(PVE allows it for root@pam with a password), removing half-made clones."),
) -> None:
    """Make PVE match the desired-state file (and wait until started VMs run as declared inside)."""
    from phoenix.commands.apply import apply_command
    from phoenix.commands.plan import PlanRequest

    request = PlanRequest(targets=target, allow_reboot=allow_reboot, replace=replace, guest=guest,
                          guest_timeout=guest_timeout)
    raise typer.Exit(apply_command(ctx.obj, request, plan_file=plan_file, auto_approve=auto_approve,
                                   parallelism=parallelism, per_node=per_node, unlock_stale=unlock_stale))


@app.command()
def show(
    ctx: typer.Context,
    vmids: list[int] = typer.Argument(None, help="VMIDs to show (default: every managed VM)."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Every managed VM: node, power, template, IPv4 from the agent, feature results, pending changes."""
    from phoenix.commands.show import show_command

    raise typer.Exit(show_command(ctx.obj, vmids or [], as_json))


@app.command()
def destroy(
    ctx: typer.Context,
    vmids: list[int] = typer.Argument(..., help="VMIDs to destroy."),
    auto_approve: bool = typer.Option(False, "--auto-approve", help="Do not ask for 'yes'."),
    force: bool = typer.Option(False, "--force", help="Also destroy VMs phoenix does not manage."),
) -> None:
    """Stop and delete VMs (disks purged, snippet removed) and drop them from the state."""
    from phoenix.commands.destroy import destroy_command

    raise typer.Exit(destroy_command(ctx.obj, vmids, auto_approve=auto_approve, force=force))


@app.command("import")
def import_vm(ctx: typer.Context, vmid: int = typer.Argument(..., help="VMID of an existing VM.")) -> None:
    """Adopt an existing VM into the state without replacing it."""
    from phoenix.commands.adopt import import_command

    raise typer.Exit(import_command(ctx.obj, vmid))


@app.command("force-unlock")
def force_unlock(ctx: typer.Context, lock_id: str = typer.Argument(..., help="The lock ID an error named.")) -> None:
    """Release a state lock left by a crashed phoenix."""
    from phoenix.commands.unlock import force_unlock_command

    raise typer.Exit(force_unlock_command(ctx.obj, lock_id))


@app.command()
def schema() -> None:
    """Print the JSON Schema of the desired-state file (for editors)."""
    from phoenix.desired.commands import schema_command

    raise typer.Exit(schema_command())


@template_app.command("provision")
def template_provision(
    ctx: typer.Context,
    vmid: Optional[int] = typer.Argument(None, help="Template VMID (default: every declared template)."),
    on_pve_host: bool = typer.Option(False, "--on-pve-host",
                                     help="phoenix runs on the PVE node: place the image in the storage directory."),
    image_storage: Optional[str] = typer.Option(None, "--image-storage",
                                                help="Storage with 'import' content for the image (default: found)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Image cache (default ~/.cache/phoenix/images)."),
) -> None:
    """Build a declared template from its cloud image; does nothing if it already exists."""
    from phoenix.commands.provision import provision_command

    raise typer.Exit(provision_command(ctx.obj, vmid, cache_dir=cache_dir, on_pve_host=on_pve_host,
                                       image_storage=image_storage))


@sim_app.command("serve")
def sim_serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8006, help="Port (0 = pick a free one)."),
    nodes: str = typer.Option("pve", help="Comma-separated node names, e.g. pve1,pve2."),
    data_dir: Path = typer.Option(Path("state/sim"), "--data-dir", help="Where the cluster's state lives."),
    latency_ms: float = typer.Option(0.0, "--latency-ms", help="Added latency per request."),
    task_scale: float = typer.Option(1.0, "--task-scale", help="Multiplier for task durations (0 = instant)."),
    env_file: Optional[Path] = typer.Option(None, "--env-file", help="Write PROXMOX_VE_* settings here."),
    guest_image: Optional[Path] = typer.Option(None, "--guest-image", envvar="PHOENIX_SIM_GUEST_IMAGE",
                                               help="Boot VMs cloned from this image as real QEMU guests "
                                                    "(see `phoenix sim build-guest-image`)."),
    guest_memory_mb: int = typer.Option(1024, "--guest-memory-mb", help="RAM cap per real guest (MiB)."),
    guest_cpus: int = typer.Option(1, "--guest-cpus", help="vCPU cap per real guest."),
) -> None:
    """Run the simulated Proxmox VE over HTTPS until stopped."""
    from phoenix.sim.cli import serve

    serve(host=host, port=port, nodes=[n for n in nodes.split(",") if n], data_dir=data_dir,
          latency_ms=latency_ms, task_scale=task_scale, env_file=env_file, guest_image=guest_image,
          guest_memory_mb=guest_memory_mb, guest_cpus=guest_cpus)


@sim_app.command("build-guest-image")
def sim_build_guest_image(
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir",
                                             help="Image cache (default $PHOENIX_GUEST_IMAGE_CACHE or ~/.cache/phoenix/guest-images)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even when the cached image is current."),
) -> None:
    """Build (or reuse) the Debian guest image that `sim serve --guest-image` boots; prints its path."""
    from phoenix.sim.qemu.cli import build_image_command

    build_image_command(cache_dir, force=force)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    finally:
        # Whatever is alive now dies with the process: without this, the interpreter's final
        # collection walks every object pydantic, rich and the run made (~60 ms of each command;
        # streams are still flushed and atexit handlers still run).
        gc.freeze()
