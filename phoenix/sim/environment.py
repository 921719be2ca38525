"""The simulator as an environment phoenix's commands run in (wired by ``phoenix/cli.py`` only).

* :class:`EmbeddedSimulator` — ``phoenix --sim``: a simulator started for the command, its cluster
  kept in ``data_dir`` between runs.
* :class:`ServedSimulator` — a ``phoenix sim serve`` whose env file set ``PHOENIX_SIM_DATA_DIR``:
  phoenix connects with the ``PROXMOX_VE_*`` settings like to any PVE and shares that
  simulator's host (its storage directories).

Both inject the visible offline stand-ins; a real PVE gets neither them nor any probe request.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from phoenix.commands.environment import Connection, RealPVE
from phoenix.template.simulated import OfflineStandIns

SIM_TASK_SCALE_ENV = "PHOENIX_SIM_TASK_SCALE"
SIM_DATA_DIR_ENV = "PHOENIX_SIM_DATA_DIR"
DEFAULT_SIM_TASK_SCALE = 0.1


@dataclass
class EmbeddedSimulator:
    data_dir: Path

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        from rich.console import Console

        from phoenix.sim.qemu.backend import GUEST_IMAGE_ENV
        from phoenix.sim.server import SimServer

        scale = float(os.environ.get(SIM_TASK_SCALE_ENV, DEFAULT_SIM_TASK_SCALE))
        guest_image = os.environ.get(GUEST_IMAGE_ENV) or None     # real QEMU guests (phoenix.sim.qemu)
        with SimServer(self.data_dir, task_scale=scale,
                       guest_image=Path(guest_image) if guest_image else None) as server:
            Console(stderr=True, highlight=False, soft_wrap=True).print(
                f"[dim]using the embedded Proxmox VE simulator ({self.data_dir}, {server.endpoint})[/dim]")
            # Connected like any PVE (the simulator itself never imports phoenix.pve).
            own = RealPVE(env={
                "PROXMOX_VE_ENDPOINT": server.endpoint,
                "PROXMOX_VE_API_TOKEN": server.api_token,
                "PROXMOX_VE_CA_FILE": str(server.ca_file),
            })
            model = server.sim.model
            with own.connect() as connection:
                yield Connection(connection.client,
                                 storage_roots=lambda node, storage: model.storage_root(storage, node),
                                 stand_ins=OfflineStandIns())


@dataclass
class ServedSimulator:
    data_dir: Path

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        from phoenix.sim.persist import ModelStore

        # Read the served simulator's model only if a step needs a storage directory (delivering a
        # snippet): a 10,000-VM cluster is ~100 MB of JSON that a plan has no use for.
        model = functools.cache(lambda: ModelStore(self.data_dir).load())
        with RealPVE().connect() as connection:
            yield Connection(connection.client,
                             storage_roots=lambda node, storage: model().storage_root(storage, node),
                             stand_ins=OfflineStandIns())


def environment_for(sim: bool, state_path: Path) -> EmbeddedSimulator | ServedSimulator | RealPVE:
    """``--sim`` → the embedded simulator beside the state file; an env file of ``phoenix sim serve`` →
    that simulator; otherwise the real PVE of ``PROXMOX_VE_*``."""
    if sim:
        return EmbeddedSimulator(state_path.parent / "sim")
    served = os.environ.get(SIM_DATA_DIR_ENV)
    if served:
        return ServedSimulator(Path(served))
    return RealPVE()
