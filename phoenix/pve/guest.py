"""Facts from inside a running VM, read through PVE's guest-agent endpoints (never SSH).

What phoenix asks a guest: the IPv4 addresses on the NIC with the declared MAC
(``agent/network-get-interfaces``), the host name (``agent/get-host-name``), the instance-id
cloud-init runs under, whether cloud-init's final stage ended (``/run/cloud-init/result.json``, on
tmpfs, so it is always this boot's) and the feature runner's status file (``agent/file-read``).
:func:`wait_for_guest` is how apply knows a started VM is really done; :func:`read_guest` is what
``plan --guest`` and ``show`` read.  Everything a guest says is untrusted and bounded.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from phoenix.errors import PhoenixError
from phoenix.guest.runner import (CLOUD_INIT_RESULT, INSTANCE_ID_PATH, RUNNER_PATH, STATUS_PATH, RunnerStatus,
                                  StatusError, parse_cloud_init_result, parse_status)
from phoenix.pve.answer import expect_dict, str_field
from phoenix.pve.client import PVEApiError
from phoenix.pve.polling import DurationLearner, LearnedWait

__all__ = ["GuestFacts", "GuestNotReady", "read_guest", "read_guests", "wait_for_guest", "rerun_features", "ipv4_on_mac",
           "DEFAULT_GUEST_TIMEOUT_S", "agent_down"]

DEFAULT_GUEST_TIMEOUT_S = 900
PROGRESS_EVERY_S = 10
READ_LIMIT = 1 << 20
MAX_POLL_S = 2.0     # a guest that is done is noticed within 2 s (a wait of minutes costs a read per 2 s)
FIRST_POLL_S = 0.05
_AGENT_DOWN = ("QEMU guest agent is not running", "is not running", "got timeout", "guest agent is not enabled")


class GuestNotReady(PhoenixError):
    """The guest did not get where it had to within the time allowed (agent, cloud-init)."""


@dataclass(frozen=True)
class GuestFacts:
    """One running VM as its guest agent describes it; ``problem`` says why something is missing."""

    vmid: int
    agent: bool
    problem: str | None = None
    hostname: str | None = None
    ipv4: tuple[str, ...] = ()
    instance_id: str | None = None
    cloud_init_done: bool = False
    cloud_init_errors: tuple[str, ...] = ()
    status: RunnerStatus | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def features_current(self) -> bool:
        """The status file is the runner's for the instance-id cloud-init runs under now."""
        return self.status is not None and self.instance_id is not None and self.status.instance_id == self.instance_id

    def to_json(self) -> dict[str, Any]:
        return {"agent": self.agent, "problem": self.problem, "hostname": self.hostname, "ipv4": list(self.ipv4),
                "instance_id": self.instance_id, "cloud_init_done": self.cloud_init_done,
                "cloud_init_errors": list(self.cloud_init_errors),
                "features": self.status.to_json() if self.status else None}


def agent_down(exc: PVEApiError) -> bool:
    return any(text in exc.message for text in _AGENT_DOWN)


def _answer(data: Any, where: str) -> dict[str, Any]:
    """An agent endpoint's ``data``: an object (None, as PVE sends for an empty answer, is one)."""
    return {} if data is None else expect_dict(data, where)


def _address(entry: Any) -> str | None:
    """``"10.0.0.5/24"`` from one of the guest's ``ip-addresses`` entries, if it is a real IPv4 one."""
    if not isinstance(entry, dict) or entry.get("ip-address-type") != "ipv4":
        return None
    try:
        prefix = entry.get("prefix")
        if not isinstance(prefix, int) or isinstance(prefix, bool):
            return None
        return str(ipaddress.IPv4Interface(f"{entry.get('ip-address')}/{prefix}"))
    except (ValueError, TypeError):
        return None


def _base(node: str, vmid: int) -> str:
    return f"/nodes/{node}/qemu/{vmid}/agent"


def read_file(client: Any, node: str, vmid: int, path: str) -> str | None:
    """A small text file from the guest, or None when it does not exist."""
    try:
        where = f"{_base(node, vmid)}/file-read"
        answer = _answer(client.get(where, file=path, count=READ_LIMIT), f"GET {where}")
    except PVEApiError as exc:
        if "No such file" in exc.message:
            return None
        raise
    if answer.get("truncated"):
        raise StatusError(f"{path}: larger than {READ_LIMIT} bytes")
    content = str_field(answer, "content", f"GET {where}", "data", default="")
    try:
        raw = content.encode("latin-1")                  # PVE puts the raw bytes in as code points
    except UnicodeEncodeError:
        return content
    return raw.decode("utf-8", errors="replace")


def ipv4_on_mac(interfaces: Any, mac: str | None) -> tuple[str, ...]:
    """``("10.0.0.101/24", …)`` on the NIC with ``mac`` (the first non-loopback NIC without one)."""
    if not isinstance(interfaces, list):
        return ()
    for nic in interfaces:
        if not isinstance(nic, dict) or nic.get("name") == "lo":
            continue
        if mac and str(nic.get("hardware-address", "")).lower() != mac.lower():
            continue
        addresses = nic.get("ip-addresses")
        found = (_address(a) for a in (addresses if isinstance(addresses, list) else []))
        return tuple(a for a in found if a)[:16]
    return ()


_UNREAD = object()


def _runner_facts(client: Any, node: str, vmid: int, result: Any = _UNREAD) -> dict[str, Any]:
    """instance-id, cloud-init's result (unless the caller just read it) and the status file (3 file reads)."""
    facts: dict[str, Any] = {}
    instance = read_file(client, node, vmid, INSTANCE_ID_PATH)
    facts["instance_id"] = instance.strip()[:200] if instance else None
    if result is _UNREAD:
        result = read_file(client, node, vmid, CLOUD_INIT_RESULT)
    facts["cloud_init_done"] = result is not None
    facts["cloud_init_errors"] = tuple(parse_cloud_init_result(result)) if result is not None else ()
    status = read_file(client, node, vmid, STATUS_PATH)
    facts["status"] = parse_status(status) if status is not None else None
    return facts


def read_guest(client: Any, node: str, vmid: int, mac: str | None = None,
               runner: dict[str, Any] | None = None) -> GuestFacts:
    """Everything ``plan --guest`` compares: 5 agent calls for a VM whose agent answers, 1 otherwise
    (2 when the caller just read the ``runner`` facts)."""
    base = _base(node, vmid)
    try:
        interfaces = _answer(client.get(f"{base}/network-get-interfaces"), f"GET {base}/network-get-interfaces").get("result")
    except PVEApiError as exc:
        if agent_down(exc) or "No QEMU guest agent configured" in exc.message:
            return GuestFacts(vmid=vmid, agent=False, problem=exc.message)
        raise
    named = _answer(client.get(f"{base}/get-host-name"), f"GET {base}/get-host-name").get("result")
    hostname = named.get("host-name") if isinstance(named, dict) else None
    hostname = hostname if isinstance(hostname, str) else None
    try:
        runner = runner if runner is not None else _runner_facts(client, node, vmid)
    except StatusError as exc:
        return GuestFacts(vmid=vmid, agent=True, problem=str(exc), hostname=hostname,
                          ipv4=ipv4_on_mac(interfaces, mac))
    return GuestFacts(vmid=vmid, agent=True, hostname=str(hostname)[:253] if hostname else None,
                      ipv4=ipv4_on_mac(interfaces, mac), **runner)


class _Clock:
    """Elapsed time and the every-~10-s progress line of one wait; the sleeps between polls are
    learned per kind of wait (:mod:`phoenix.pve.polling`): after the first VMs of an apply, the
    next one is looked at just before its agent or cloud-init is expected, then finely."""

    def __init__(self, timeout: float, progress: Callable[[str], None], learner: DurationLearner, kind: str):
        self.started = self.reported = time.monotonic()
        self.timeout, self.progress, self.learner = timeout, progress, learner
        self.wait = self._waiting_for(kind)

    def _waiting_for(self, kind: str) -> LearnedWait:
        return LearnedWait(self.learner, kind, first=FIRST_POLL_S, max_interval=MAX_POLL_S)

    def expect(self, kind: str) -> None:
        """The previous kind of wait is over (seen done); what is waited for from now on."""
        self.wait.hit()
        self.wait = self._waiting_for(kind)

    def done(self) -> None:
        self.wait.hit()

    @property
    def waited(self) -> float:
        return time.monotonic() - self.started

    @property
    def report_due(self) -> bool:
        return time.monotonic() - self.reported >= PROGRESS_EVERY_S

    def tick(self, what: str, failure: str) -> None:
        """Sleep before the next poll; report progress; raise :class:`GuestNotReady` past the deadline."""
        if self.waited > self.timeout:
            raise GuestNotReady(failure.format(timeout=f"{self.timeout:.0f}"))
        if self.report_due:
            self.progress(f"{what} ({self.waited:.0f}s)")
            self.reported = time.monotonic()
        time.sleep(min(self.wait.missed(), max(0.0, self.timeout - self.waited) + FIRST_POLL_S))


def _features_line(status: RunnerStatus | None) -> str:
    if status is None or not status.features:
        return ""
    done = sum(1 for f in status.features if f.state == "done")
    running = [f.name for f in status.features if f.state == "running"]
    return f"; features {done}/{len(status.features)} done" + (f", {running[0]} running" if running else "")


def wait_for_guest(client: Any, node: str, vmid: int, *, timeout: float = DEFAULT_GUEST_TIMEOUT_S,
                   progress: Callable[[str], None] = lambda line: None, mac: str | None = None,
                   not_instance: str | None = None, learn_as: str = "") -> GuestFacts:
    """Wait (bounded) until the agent answers, cloud-init finished and the runner's status file is
    the one of the instance-id cloud-init runs under now; ``not_instance``: after a reboot for a
    cloud-init change, that instance-id must have been replaced.  Returns the guest's facts.
    ``learn_as`` tells guests apart whose cloud-init takes different times (their features): the
    polls learn how long the agent and cloud-init take, per such kind.

    While the agent is silent this costs one ping per poll; then one file read per poll until
    cloud-init is done, then two more and the interfaces and host name."""
    clock = _Clock(timeout, progress, client.durations, "guest agent")
    base = _base(node, vmid)
    while True:
        try:
            client.post(f"{base}/ping")
            break
        except PVEApiError as exc:
            if not agent_down(exc):
                raise
            clock.tick("waiting for the guest agent",
                       f"VM {vmid}: the guest agent did not answer within {{timeout}}s ({exc.message})")
    clock.expect(f"cloud-init {learn_as}".rstrip())
    while True:
        try:
            result = read_file(client, node, vmid, CLOUD_INIT_RESULT)
            if result is not None:
                runner = _runner_facts(client, node, vmid, result)
                new_instance = not_instance is None or runner["instance_id"] != not_instance
                status = runner["status"]
                if new_instance and not (status and status.instance_id == runner["instance_id"]
                                         and not status.done):
                    break
            else:       # still running: the status file says how far the features are (read ~every 10 s)
                text = read_file(client, node, vmid, STATUS_PATH) if clock.report_due else None
                status = parse_status(text) if text else None
        except StatusError:
            status = None
        except PVEApiError as exc:
            if not agent_down(exc):
                raise
            status = None
        clock.tick(f"waiting for cloud-init{_features_line(status)}",
                   f"VM {vmid}: cloud-init did not finish within {{timeout}}s")
    clock.done()
    return read_guest(client, node, vmid, mac, runner)


def rerun_features(client: Any, node: str, vmid: int, features: list[str], *,
                   timeout: float = DEFAULT_GUEST_TIMEOUT_S, progress: Callable[[str], None] = lambda line: None,
                   mac: str | None = None) -> GuestFacts:
    """Run the feature runner again through ``agent/exec`` (features are idempotent) and wait for it."""
    clock = _Clock(timeout, progress, client.durations, f"features {','.join(features)}")
    base = _base(node, vmid)
    pid = _answer(client.post(f"{base}/exec", command=[RUNNER_PATH, *features]), f"POST {base}/exec").get("pid")
    if not isinstance(pid, int):
        raise PhoenixError(f"VM {vmid}: agent/exec returned no pid")
    while True:
        answer = _answer(client.get(f"{base}/exec-status", pid=pid), f"GET {base}/exec-status")
        if answer.get("exited"):
            break
        status_text = read_file(client, node, vmid, STATUS_PATH) if clock.waited >= PROGRESS_EVERY_S else None
        clock.tick(f"running features again{_features_line(parse_status(status_text) if status_text else None)}",
                   f"VM {vmid}: the feature runner did not finish within {{timeout}}s")
    clock.done()
    return read_guest(client, node, vmid, mac)


def read_guests(client: Any, inventory: Any, vmids: Any, max_workers: int = 8) -> dict[int, GuestFacts]:
    """:func:`read_guest` for the running VMs among ``vmids``, concurrently (bounded): a few agent calls
    per running VM, none for a stopped one."""
    from concurrent.futures import ThreadPoolExecutor

    from phoenix.pve import propstr

    def mac_of(facts: Any) -> str | None:
        net0 = facts.config.get("net0")
        try:
            return (propstr.parse_net(net0).get("macaddr") or None) if net0 else None
        except ValueError:
            return None

    running = [inventory.vms[v] for v in sorted(set(vmids)) if v in inventory.vms
               and inventory.vms[v].status == "running" and not inventory.vms[v].template]
    if not running:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(running)))) as pool:
        found = pool.map(lambda f: read_guest(client, f.node, f.vmid, mac_of(f)), running)
        return {facts.vmid: facts for facts in found}
