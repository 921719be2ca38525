"""``phoenix sim serve``: run the simulator in the foreground until SIGINT/SIGTERM.

Prints where it listens and where the env file is; the token secret goes only into that file
(mode 0600), never to stdout, so terminal logs and CI output stay free of secrets.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from phoenix.errors import PhoenixError
from phoenix.sim.persist import atomic_write_text

__all__ = ["serve", "write_env_file"]


def write_env_file(path: Path, endpoint: str, api_token: str, ca_file: str, data_dir: Path | None = None) -> Path:
    """Write ``PROXMOX_VE_*`` settings for phoenix (``ConnectionSettings.from_env``) with mode 0600.

    ``PHOENIX_SIM_DATA_DIR`` tells phoenix that it shares this simulator's host, so its ``local``
    snippet backend writes where the simulated nodes read and image fetches are simulated.
    """
    text = (f"PROXMOX_VE_ENDPOINT={endpoint}\n"
            f"PROXMOX_VE_API_TOKEN={api_token}\n"
            f"PROXMOX_VE_CA_FILE={ca_file}\n")
    if data_dir is not None:
        text += f"PHOENIX_SIM_DATA_DIR={data_dir}\n"
    atomic_write_text(Path(path), text, mode=0o600)
    return Path(path)


def serve(host: str, port: int, nodes: list[str], data_dir: Path, latency_ms: float = 0.0,
          task_scale: float = 1.0, env_file: Path | None = None, guest_image: Path | None = None,
          guest_memory_mb: int = 1024, guest_cpus: int = 1) -> None:
    """Start a SimServer, announce it, block until a stop signal, then shut down cleanly."""
    from phoenix.sim.server import SimServer

    if not nodes:
        raise PhoenixError("--nodes: give at least one node name, e.g. pve or pve1,pve2")
    if task_scale < 0:
        raise PhoenixError("--task-scale: must be 0 or more")
    if latency_ms < 0:
        raise PhoenixError("--latency-ms: must be 0 or more")
    if guest_memory_mb < 128:
        raise PhoenixError("--guest-memory-mb: must be 128 or more")
    if guest_cpus < 1:
        raise PhoenixError("--guest-cpus: must be 1 or more")
    data_dir = Path(data_dir).resolve()
    server = SimServer(data_dir, nodes=nodes, host=host, port=port, latency_ms=latency_ms, task_scale=task_scale,
                       guest_image=guest_image, guest_memory_mb=guest_memory_mb, guest_cpus=guest_cpus)
    try:
        server.start()
    except OSError as exc:
        raise PhoenixError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        env_path = write_env_file(Path(env_file) if env_file else data_dir / "sim.env",
                                  server.endpoint, server.api_token, server.ca_file, data_dir)
        print(f"phoenix simulator listening on {server.endpoint} (nodes: {', '.join(nodes)})", flush=True)
        print(f"env file: {env_path}  (source it: set -a; . {env_path}; set +a)", flush=True)
        print(f"CA file: {server.ca_file}", flush=True)
        if server.sim.guests is not None:
            limits = server.sim.guests.limits
            print(f"real guests: {server.sim.guests.image} ({limits.accel}, up to {limits.memory_mb} MiB and "
                  f"{limits.cpus} vCPU each; per-VM files in {server.sim.guests.root})", flush=True)
        while not stop.wait(0.5):
            pass
        print("stopping simulator", flush=True)
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
