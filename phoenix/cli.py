"""Command-line wiring: each command parses options and calls into the package; no logic lives here.

Heavy modules are imported inside the commands so that ``phoenix --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    help="Declarative Proxmox VE virtual machines from cloud-image templates.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
sim_app = typer.Typer(help="The built-in Proxmox VE simulator.", no_args_is_help=True)
template_app = typer.Typer(help="Cloud-image templates.", no_args_is_help=True)
app.add_typer(sim_app, name="sim")
app.add_typer(template_app, name="template")

DEFAULT_CONFIG = Path("desired/phoenix_vm_configs.json")


@app.command()
def validate(
    config: Path = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="Desired-state file."),
) -> None:
    """Check the desired-state file; print every problem, or a one-line summary."""
    from phoenix.desired.commands import validate_command

    raise typer.Exit(validate_command(config))


@app.command()
def schema() -> None:
    """Print the JSON Schema of the desired-state file (for editors)."""
    from phoenix.desired.commands import schema_command

    raise typer.Exit(schema_command())


@sim_app.command("serve")
def sim_serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8006, help="Port (0 = pick a free one)."),
    nodes: str = typer.Option("pve", help="Comma-separated node names, e.g. pve1,pve2."),
    data_dir: Path = typer.Option(Path("state/sim"), "--data-dir", help="Where the cluster's state lives."),
    latency_ms: float = typer.Option(0.0, "--latency-ms", help="Added latency per request."),
    task_scale: float = typer.Option(1.0, "--task-scale", help="Multiplier for task durations (0 = instant)."),
    env_file: Optional[Path] = typer.Option(None, "--env-file", help="Write PROXMOX_VE_* settings here."),
) -> None:
    """Run the simulated Proxmox VE over HTTPS until stopped."""
    from phoenix.sim.cli import serve

    serve(host=host, port=port, nodes=[n for n in nodes.split(",") if n], data_dir=data_dir,
          latency_ms=latency_ms, task_scale=task_scale, env_file=env_file)


def main() -> None:
    """Console-script entry point: PhoenixError → one line on stderr, exit 1."""
    from phoenix.errors import PhoenixError

    try:
        app()
    except PhoenixError as exc:
        import sys

        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
