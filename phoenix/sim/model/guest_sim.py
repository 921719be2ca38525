"""The simulated guest: cloud-init follows the seed it booted with, and phoenix's runner "runs" features.

Its state lives in ``vm.guest`` (plain JSON, persisted with the model) in two parts, like a real
machine: ``boot`` is what lives in RAM and ``/run`` (gone at power-off), ``disk`` what survives a
reboot (the instance-id cloud-init last ran, files it wrote, the runner's last run).  Nothing runs
in the background: a run is a schedule (start time, per-feature durations and results) and every
read computes what the guest shows *now*, so a status file "fills up" while features run and a
power-off in the middle leaves it half-written, as on a real disk.

Timing (base seconds × ``task_scale``): the agent answers after ``agent_boot_seconds``; cloud-init
reaches ``runcmd`` one second later; each feature takes ``FEATURE_SECONDS`` (or what a fault
says); ``/run/cloud-init/result.json`` appears when the runner is done.  ``runcmd`` runs once per
instance-id, as cloud-init's per-instance modules do: a reboot with an unchanged seed runs nothing.
Faults (``POST /_sim/faults`` with ``feature``) make a named feature exit non-zero with log lines.
"""

from __future__ import annotations

import ipaddress
import json
import time
from typing import Any

from phoenix.guest.runner import (CLOUD_INIT_RESULT, INSTANCE_ID_PATH, RUNNER_PATH, STATUS_PATH, TAIL_LINES,
                                  feature_log_path, feature_script_path)
from phoenix.sim.model.guest import GuestError
from phoenix.sim.model.guest_seed import Seed, plan_from_seed
from phoenix.sim.model.vm import VM

__all__ = ["SimulatedGuest", "FEATURE_SECONDS"]

FEATURE_SECONDS = 2.0
BEFORE_RUNCMD_SECONDS = 1.0
LOG_PREFIX = feature_log_path("")[:-len(".log")]          # /var/log/phoenix/feature-
RUNCMD_ERROR = "('scripts_user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))"


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _no_file(path: str) -> GuestError:
    return GuestError(f"failed to open file '{path}' (mode: 'r'): No such file or directory")


class SimulatedGuest:
    """:class:`phoenix.sim.model.guest.Guest` over ``vm.guest``; create one per use (it holds no state)."""

    def __init__(self, sim: Any, vm: VM):
        self.sim, self.vm = sim, vm
        self.state = vm.guest
        self.state.setdefault("boot", None)
        self.state.setdefault("disk", {})
        self.state.setdefault("procs", {})

    def _changed(self) -> None:
        """Nested parts of ``vm.guest`` changed: mark the VM for the next save (model/tracking.py
        tracks only top-level assignments)."""
        touch = getattr(self.vm, "touch", None)
        if touch is not None:
            touch()

    # --- time ------------------------------------------------------------------------------------
    def _seconds(self, base: float) -> float:
        return base * float(self.sim.settings.task_scale)

    @property
    def _boot(self) -> dict[str, Any] | None:
        return self.state["boot"] if self.vm.running else None

    # --- power -----------------------------------------------------------------------------------
    def boot(self, seed: Seed | None, agent_installed: bool) -> None:
        now = time.time()
        plan = plan_from_seed(seed, self.vm.conf, self.vm.vmid)
        disk = self.state["disk"]
        runcmd_at = now + self._seconds(self.sim.settings.agent_boot_seconds + BEFORE_RUNCMD_SECONDS)
        boot = {"at": now, "seed": seed.source if seed else None, "instance_id": plan.instance_id,
                "hostname": plan.hostname, "nics": plan.nics, "agent_installed": agent_installed,
                "ci_done_at": runcmd_at, "ci_errors": []}
        if plan.instance_id is not None and plan.instance_id != disk.get("instance_id"):
            disk["instance_id"] = plan.instance_id          # cloud-init's init stage, per instance
            disk["files"] = dict(plan.files)                 # write_files
            if plan.features is not None:
                run = self._schedule(plan.features, runcmd_at, "boot")
                boot["ci_done_at"] = self._run_end(run)
                if any(f["exit_code"] for f in run["features"]):
                    boot["ci_errors"] = [RUNCMD_ERROR]
        self.state["boot"] = boot
        self.state["procs"] = {}
        self._changed()

    def power_off(self) -> None:
        run = self.state["disk"].get("run")
        if run is not None and run.get("cut") is None and self._run_end(run) > time.time():
            run["cut"] = time.time()              # the runner dies with the VM; its file stays as it was
        self.state["boot"] = None
        self.state["procs"] = {}
        self._changed()

    def agent_answers(self) -> bool:
        boot = self._boot
        if boot is None or not (self.vm.agent_device and boot["agent_installed"]):
            return False
        return time.time() >= boot["at"] + self._seconds(self.sim.settings.agent_boot_seconds)

    # --- what the agent reports ------------------------------------------------------------------
    def host_name(self) -> str:
        boot = self._boot
        return boot["hostname"] if boot else "localhost"

    def network_interfaces(self) -> list[dict[str, Any]]:
        stats = {"rx-bytes": 0, "rx-dropped": 0, "rx-errs": 0, "rx-packets": 0,
                 "tx-bytes": 0, "tx-dropped": 0, "tx-errs": 0, "tx-packets": 0}
        result = [{"name": "lo", "hardware-address": "00:00:00:00:00:00",
                   "ip-addresses": [_addr("127.0.0.1/8"), _addr("::1/128")], "statistics": dict(stats)}]
        for name, nic in (self._boot or {}).get("nics", {}).items():
            addresses = [_addr(nic[key]) for key in ("ipv4", "ipv6") if nic.get(key)]
            mac = nic["mac"] or "00:00:00:00:00:00"
            octets = mac.split(":")
            addresses.append(_addr(f"fe80::{int(octets[0], 16) ^ 2:x}{octets[1]}:{octets[2]}ff:"
                                   f"fe{octets[3]}:{octets[4]}{octets[5]}/64"))
            result.append({"name": name, "hardware-address": mac, "ip-addresses": addresses,
                           "statistics": dict(stats)})
        return result

    def file_read(self, path: str) -> bytes:
        now, boot, disk = time.time(), self._boot, self.state["disk"]
        text: str | None = None
        if path == STATUS_PATH:
            text = self._status_text(now)
        elif path == CLOUD_INIT_RESULT and boot and now >= boot["ci_done_at"]:
            text = json.dumps({"v1": {"datasource": f"DataSourceNoCloud [seed={boot['seed']}]",
                                      "errors": boot["ci_errors"]}}, indent=1) + "\n"
        elif path == INSTANCE_ID_PATH and disk.get("instance_id"):
            text = disk["instance_id"] + "\n"
        elif path == "/etc/hostname" and boot:
            text = boot["hostname"] + "\n"
        elif path in disk.get("files", {}):
            text = disk["files"][path]
        elif path.startswith(LOG_PREFIX) and path.endswith(".log"):
            lines = self._log_lines(now).get(path[len(LOG_PREFIX):-len(".log")])
            text = None if lines is None else "".join(line + "\n" for line in lines)
        if text is None:
            raise _no_file(path)
        return text.encode()

    def exec(self, argv: list[str], stdin: bytes | None) -> int:
        now = time.time()
        if not argv:
            raise GuestError("Invalid parameter 'path'")
        disk = self.state["disk"]
        proc: dict[str, Any] = {"argv": argv, "end": now, "exitcode": 0, "out": "", "err": ""}
        if argv[0] == RUNNER_PATH and RUNNER_PATH in disk.get("files", {}):
            current = disk.get("run")
            start = max(now, self._run_end(current) if current and current.get("cut") is None else now)
            run = self._schedule(argv[1:], start, "exec")
            failed = [f for f in run["features"] if f["exit_code"]]
            proc.update(end=self._run_end(run), exitcode=1 if failed else 0, out="".join(
                f"phoenix: feature {f['name']} exited {f['exit_code']} after {round(f['seconds'])}s\n"
                for f in run["features"]) + f"phoenix: {len(run['features']) - len(failed)} of "
                                            f"{len(run['features'])} features succeeded\n")
        elif argv[0] in ("cat", "/bin/cat", "/usr/bin/cat") and len(argv) == 2:
            try:
                proc["out"] = self.file_read(argv[1]).decode()
            except GuestError:
                proc.update(exitcode=1, err=f"cat: {argv[1]}: No such file or directory\n")
        elif argv[0] in ("hostname", "/bin/hostname", "/usr/bin/hostname"):
            proc["out"] = self.host_name() + "\n"
        elif argv[0] in ("true", "false", "/bin/true", "/bin/false"):
            proc["exitcode"] = 1 if argv[0].endswith("false") else 0
        else:
            raise GuestError(f"Guest agent command failed, error was 'Failed to execute child process "
                             f"\u201c{argv[0]}\u201d (No such file or directory)'")
        pid = int(self.state.get("next_pid", 4000))
        self.state["next_pid"] = pid + 1
        self.state["procs"][str(pid)] = proc
        self._changed()
        return pid

    def exec_status(self, pid: int) -> dict[str, Any]:
        proc = self.state["procs"].get(str(pid))
        if proc is None:
            raise GuestError("Invalid parameter 'pid'")
        if time.time() < proc["end"]:
            return {"exited": False}
        del self.state["procs"][str(pid)]               # reaped once reported
        self._changed()
        result: dict[str, Any] = {"exited": True, "exitcode": proc["exitcode"], "out-data": proc["out"]}
        if proc["err"]:
            result["err-data"] = proc["err"]
        return result

    # --- the runner --------------------------------------------------------------------------------
    def _schedule(self, names: list[str], start: float, kind: str) -> dict[str, Any]:
        """A new runner run from ``start``; the previous run's files are what the guest shows until then."""
        disk, now = self.state["disk"], time.time()
        disk["status_before"] = self._status_text(now)
        disk["logs_before"] = self._log_lines(now)
        features = []
        for name in names:
            fault = self._feature_fault(name)
            script = feature_script_path(name)
            if fault is not None:
                features.append({"name": name, "seconds": self._seconds(fault.get("seconds", FEATURE_SECONDS)),
                                 "exit_code": fault["exit_code"], "log": list(fault["log"])})
            elif script not in disk.get("files", {}):
                features.append({"name": name, "seconds": 0.0, "exit_code": 127,
                                 "log": [f"phoenix: feature script {script} is missing or not executable"]})
            else:
                features.append({"name": name, "seconds": self._seconds(FEATURE_SECONDS), "exit_code": 0,
                                 "log": [f"phoenix feature {name}: done"]})
        run = {"kind": kind, "instance_id": disk.get("instance_id") or "unknown", "start": start, "cut": None,
               "features": features}
        disk["run"] = run
        return run

    def _feature_fault(self, name: str) -> dict[str, Any] | None:
        take = getattr(self.sim.faults, "take_feature_fault", None)
        return take(self.vm.vmid, name) if take else None

    @staticmethod
    def _run_end(run: dict[str, Any]) -> float:
        return run["start"] + sum(f["seconds"] for f in run["features"])

    def _progress(self, now: float) -> tuple[dict[str, Any] | None, float, list[tuple[dict[str, Any], float, str]]]:
        """The last run as of ``now``: (run, effective time, [(feature, its start, state)])."""
        run = self.state["disk"].get("run")
        if run is None:
            return None, now, []
        effective = now if run.get("cut") is None else min(now, run["cut"])
        rows, at = [], run["start"]
        for feature in run["features"]:
            end = at + feature["seconds"]
            state = "done" if effective >= end else "running" if effective >= at else "pending"
            rows.append((feature, at, state))
            at = end
        return run, effective, rows

    def _status_text(self, now: float) -> str | None:
        run, effective, rows = self._progress(now)
        if run is None or effective < run["start"]:
            return self.state["disk"].get("status_before")
        features = []
        for feature, started, state in rows:
            item: dict[str, Any] = {"name": feature["name"], "state": state}
            if state != "pending":
                item.update(started=_stamp(started), log=feature_log_path(feature["name"]))
            if state == "done":
                item.update(exit_code=feature["exit_code"], duration_s=round(feature["seconds"]),
                            log_tail=feature["log"][-TAIL_LINES:])
            features.append(item)
        done = all(state == "done" for _, _, state in rows)
        failed = any(f["exit_code"] for f in run["features"])
        return json.dumps({"format": 1, "instance_id": run["instance_id"], "state": "done" if done else "running",
                           "started": _stamp(run["start"]), "finished": _stamp(self._run_end(run)) if done else None,
                           "exit_code": (1 if failed else 0) if done else None, "features": features},
                          separators=(",", ":")) + "\n"

    def _log_lines(self, now: float) -> dict[str, list[str]]:
        logs = dict(self.state["disk"].get("logs_before") or {})
        _, _, rows = self._progress(now)
        for feature, _, state in rows:
            if state == "done":
                logs[feature["name"]] = list(feature["log"])
            elif state == "running":
                logs[feature["name"]] = []
        return logs


def _addr(cidr: str) -> dict[str, Any]:
    iface = ipaddress.ip_interface(cidr)
    return {"ip-address": str(iface.ip), "ip-address-type": f"ipv{iface.version}", "prefix": iface.network.prefixlen}
