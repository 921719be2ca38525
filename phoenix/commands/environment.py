"""Which Proxmox VE phoenix talks to: chosen once by whoever starts phoenix, injected into every command.

Production code only knows the ``Environment`` protocol and the ``Connection`` it yields.  A real PVE
is :class:`RealPVE`; the simulator's environments (embedded with ``--sim``, or served by ``phoenix
sim serve``) live in ``phoenix.sim.environment`` and are wired by ``phoenix/cli.py`` alone, so no
production module imports the simulator, carries a "simulated" flag, or asks PVE whether it is one.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Iterator, Mapping, Protocol

from phoenix.errors import PhoenixError
from phoenix.pve.client import PVEClient
from phoenix.pve.settings import ENDPOINT, ConnectionSettings
from phoenix.template.simulated import OfflineStandIns

HostStorage = Callable[[str, str], Path]      # (node, storage) -> its directory on this host

SIM_HINT = "to try phoenix on its built-in Proxmox VE simulator instead, add --sim (e.g. 'phoenix --sim plan')"


@dataclass
class Connection:
    """A client plus what the environment knows about the PVE behind it.

    ``storage_roots``: the node's storage directories are on this host (a simulator's), so the
    ``local`` snippet backend and ``--on-pve-host`` write there.  ``stand_ins``: what cannot happen
    here (no internet, no OS in a stand-in image) is done by these, each announced as ``simulated:``.
    """

    client: PVEClient
    storage_roots: HostStorage | None = None
    stand_ins: OfflineStandIns | None = None


class Environment(Protocol):
    def connect(self) -> ContextManager[Connection]:
        """A connected client for the duration of a command."""
        ...


@dataclass
class RealPVE:
    """The PVE named by the ``PROXMOX_VE_*`` variables (``env`` None: the process environment)."""

    env: Mapping[str, str] | None = None

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        env = os.environ if self.env is None else self.env
        if not env.get(ENDPOINT, "").strip():
            raise PhoenixError(f"{ENDPOINT} is not set (e.g. https://pve.example:8006); {SIM_HINT}")
        with PVEClient.connect(ConnectionSettings.from_env(env)) as client:
            yield Connection(client)
