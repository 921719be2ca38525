"""The running simulator: what handlers see as ``request.sim``.

One object ties the model (sim-model's ``Cluster``) to the runtime services the HTTP layer
provides: the model mutex and persistence, tasks, VM locks, settings, fault injection, stats,
credentials.  See docs/design.md "The ``Simulator`` object".
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phoenix.sim.auth import Authenticator
from phoenix.sim.certs import Credentials, TLSFiles, ensure_credentials, ensure_tls
from phoenix.sim.faults import Faults, Stats
from phoenix.sim.locks import VMLocks
from phoenix.sim.persist import ModelStore
from phoenix.sim.schema import SCHEMA
from phoenix.sim.tasks import TaskManager

__all__ = ["Settings", "Simulator"]


@dataclass
class Settings:
    """Knobs of one simulator; tests use ``task_scale=0`` and ``auth_fail_delay=0``."""

    nodes: list[str] = field(default_factory=lambda: ["pve"])
    data_dir: Path = Path("state/sim")
    task_scale: float = 1.0          # multiplies modelled task durations; 0 = tasks finish at once
    latency_ms: float = 0.0          # added to every API request
    agent_boot_seconds: float = 3.0  # guest agent answers this long (× task_scale) after start
    auth_fail_delay: float = 3.0     # PVE delays every 401 by 3 s
    guest_image: Path | None = None  # boot real QEMU guests from this image (phoenix.sim.qemu)
    guest_memory_mb: int = 1024      # caps per real guest (declared values above these are capped)
    guest_cpus: int = 1


class Simulator:
    """Model + mutex + persistence + tasks + locks + faults for one data dir."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.data_dir = Path(settings.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self.tls: TLSFiles = ensure_tls(self.data_dir)
        self.credentials: Credentials = ensure_credentials(self.data_dir)
        self.auth = Authenticator(self.credentials)
        self.mutex = threading.RLock()
        self._store = ModelStore(self.data_dir)
        self.model: Any = self._store.load_or_create(settings.nodes)
        known = {f"{method} {template}" for template, methods in SCHEMA["endpoints"].items() for method in methods}
        self.faults = Faults(known)
        self.stats = Stats()
        self.locks = VMLocks()
        self.tasks = TaskManager(self, self.data_dir / "tasks.log")
        self.guests: Any = None          # the real-guest backend, only with a guest image
        if settings.guest_image is not None:
            from phoenix.sim.qemu.integration import attach_backend

            self.guests = attach_backend(self)

    def save(self) -> None:
        """Persist what changed in the model since the last save (call after a mutation, with the mutex held)."""
        with self.mutex:
            self._store.save(self.model)

    def refresh(self) -> None:
        """Reload the model if another process on the same data dir wrote a newer file.

        The common case (nothing changed) is answered without the mutex; a difference is
        re-checked under it, so a save of our own in progress is not mistaken for an outside write.
        """
        if not self._store.changed_on_disk():
            return
        with self.mutex:
            if self._store.changed_on_disk():
                self.model = self._store.load()
                if self.guests is not None:
                    self.model.guest_image_match = self.guests.matches

    def storage_dir(self, storage_id: str) -> Path:
        """The real directory backing a dir storage (snippets, iso, import, images)."""
        path = self.data_dir / "storage" / storage_id
        path.mkdir(parents=True, exist_ok=True)
        return path
