"""Progress of an apply, printed as it happens (one line per event, safe from many threads)."""

from __future__ import annotations

import threading

from rich.console import Console
from phoenix.text import markup_safe as escape   # outside text: control characters and markup shown, not run

from phoenix.plan.model import CREATE, DELETE, REPLACE, ResourceChange
from phoenix.plan.steps import Step

_DONE = {CREATE: "Creation complete", DELETE: "Destruction complete", REPLACE: "Replacement complete"}
_STEP_LABELS = {
    "provision_template": "provisioning template", "clone": "cloning", "resize": "resizing disk",
    "configure": "configuring", "deliver_user_data": "delivering user-data",
    "regenerate_cloudinit": "regenerating cloud-init drive", "start": "starting", "stop": "stopping",
    "reboot": "rebooting", "wait_guest": "waiting for the guest", "revert_pending": "reverting pending values", "destroy": "destroying",
    "remove_user_data": "removing user-data", "forget": "forgetting",
}


class ApplyReporter:
    """Terraform-like progress lines: ``vm.8001: cloning…`` / ``vm.8001: Creation complete after 3s``."""

    def __init__(self, console: Console, verbose: bool = False):
        self.console = console
        self.verbose = verbose
        self._lock = threading.Lock()

    def _print(self, rc: ResourceChange, text: str) -> None:
        with self._lock:
            self.console.print(f"[bold]{rc.address}[/bold]: {text}", highlight=False)

    def chain_started(self, rc: ResourceChange) -> None:
        self._print(rc, f"{rc.action} ({escape(rc.name)}, node {escape(rc.node)})…")

    def step_started(self, rc: ResourceChange, step: Step) -> None:
        if self.verbose:
            self._print(rc, f"{_STEP_LABELS.get(step.op, step.op)}…")

    def step_finished(self, rc: ResourceChange, step: Step, seconds: float) -> None:
        if self.verbose:
            self._print(rc, f"{step.op} done [{seconds:.1f}s]")

    def step_failed(self, rc: ResourceChange, step: Step, message: str) -> None:
        self._print(rc, f"[red]failed while {_STEP_LABELS.get(step.op, step.op)}:[/red] {escape(message)}")

    def progress(self, rc: ResourceChange, message: str) -> None:
        self._print(rc, f"[dim]{escape(message)}[/dim]")

    def chain_finished(self, rc: ResourceChange, seconds: float) -> None:
        self._print(rc, f"[green]{_DONE.get(rc.action, 'Modifications complete')}[/green] after {seconds:.1f}s")

    def chain_skipped(self, rc: ResourceChange, because: str) -> None:
        self._print(rc, f"[yellow]skipped[/yellow]: {escape(because)} failed")

    def note(self, message: str) -> None:
        with self._lock:
            self.console.print(message, highlight=False)
