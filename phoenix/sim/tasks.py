"""PVE worker tasks: UPIDs, worker threads, task logs and the bounded task archive.

PVE forks a worker for every long operation and hands the client a UPID to poll; clients
(proxmoxer's ``Tasks.blocking_status``, phoenix's ``wait_task``) depend on the exact UPID layout,
the ``running``/``stopped`` states and the final ``TASK OK`` / ``TASK ERROR: ...`` log line.
Workers here are threads; ``task.sleep`` scales the modelled durations by ``task_scale``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

from phoenix.sim.core import PVEError
from phoenix.sim.persist import atomic_write_text

__all__ = ["Task", "TaskManager", "TaskInterrupted", "UPID_RE", "format_upid", "parse_upid"]

log = logging.getLogger("phoenix.sim.tasks")

UPID_RE = re.compile(
    r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):"
    r"([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$"
)

MAX_FINISHED_IN_MEMORY = 2000
MAX_PERSISTED = 300
MAX_PERSISTED_LOG_LINES = 1000
COMPACT_FACTOR = 4
WAIT_FOR_INSTANT_TASKS = 60.0


class TaskInterrupted(Exception):
    """Raised inside a worker that was stopped via ``DELETE /nodes/{node}/tasks/{upid}``."""


class InjectedTaskFault(Exception):
    """A failure injected through ``/_sim/faults`` (``task_type``)."""


def format_upid(node: str, pid: int, pstart: int, starttime: int, type_: str, id_: str, user: str) -> str:
    return f"UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{type_}:{id_}:{user}:"


def parse_upid(upid: str) -> dict[str, Any] | None:
    """PVE's ``upid_decode``: the fields, or None when the text is not a UPID."""
    match = UPID_RE.match(upid or "")
    if not match:
        return None
    return {
        "node": match.group(1), "pid": int(match.group(3), 16), "pstart": int(match.group(4), 16),
        "starttime": int(match.group(5), 16), "type": match.group(6), "id": match.group(7),
        "user": match.group(8),
    }


class Task:
    """One worker: what the status/log endpoints report and what ``work(task)`` may use."""

    def __init__(self, manager: "TaskManager", upid: str, fields: dict[str, Any]):
        self._manager = manager
        self.upid = upid
        self.node = fields["node"]
        self.pid = fields["pid"]
        self.pstart = fields["pstart"]
        self.starttime = fields["starttime"]
        self.type = fields["type"]
        self.id = fields["id"]
        self.user = fields["user"]
        self.lines: list[str] = []
        self.status = "running"
        self.exitstatus: str | None = None
        self.endtime: int | None = None
        self._stop = threading.Event()
        self.done = threading.Event()
        self._lines_lock = threading.Lock()

    # --- what work() uses ----------------------------------------------------------------------
    def log(self, line: str) -> None:
        """Append to the task log (one entry per line, as the worker's stdout)."""
        with self._lines_lock:
            self.lines.extend(str(line).rstrip("\n").split("\n"))

    def sleep(self, base_seconds: float) -> None:
        """Model a duration; returns early with :class:`TaskInterrupted` if the task is stopped."""
        seconds = float(base_seconds) * self._manager.settings.task_scale
        if self._stop.wait(seconds if seconds > 0 else 0):
            raise TaskInterrupted("received interrupt")

    def check_interrupted(self) -> None:
        if self._stop.is_set():
            raise TaskInterrupted("received interrupt")

    @property
    def sim(self) -> Any:
        return self._manager.sim

    # --- views ---------------------------------------------------------------------------------
    def user_fields(self) -> dict[str, str]:
        user, _, tokenid = self.user.partition("!")
        return {"user": user, "tokenid": tokenid} if tokenid else {"user": user}

    def status_view(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "upid": self.upid, "node": self.node, "pid": self.pid, "pstart": self.pstart,
            "starttime": self.starttime, "type": self.type, "id": self.id, "status": self.status,
        }
        view.update(self.user_fields())
        if self.status == "stopped":
            view["exitstatus"] = self.exitstatus
        return view

    def list_view(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "upid": self.upid, "node": self.node, "pid": self.pid, "pstart": self.pstart,
            "starttime": self.starttime, "type": self.type, "id": self.id,
        }
        view.update(self.user_fields())
        if self.status == "stopped":
            view["endtime"] = self.endtime
            view["status"] = self.exitstatus
        return view

    def log_lines(self) -> list[str]:
        with self._lines_lock:
            return list(self.lines)

    def to_json(self) -> dict[str, Any]:
        return {"upid": self.upid, "lines": self.log_lines()[-MAX_PERSISTED_LOG_LINES:],
                "exitstatus": self.exitstatus, "endtime": self.endtime}


class TaskManager:
    """Spawns workers, keeps running and finished tasks, answers lookups by UPID."""

    def __init__(self, sim: Any, archive_file: Path | None = None):
        self.sim = sim
        self.settings = sim.settings
        self._archive_file = archive_file
        self._lock = threading.Lock()
        self._running: dict[str, Task] = {}
        self._finished: "OrderedDict[str, Task]" = OrderedDict()
        self._pids = itertools.count(random.randint(0x1000, 0x3FFFFF))
        self._pstart_base = random.randint(0x100000, 0x8FFFFFF)
        self._local = threading.local()
        self._archive_write_lock = threading.Lock()
        self._archive_lines = 0        # lines in the archive log (compacted past COMPACT_FACTOR × MAX_PERSISTED)
        self._load_archive()

    # --- spawning ------------------------------------------------------------------------------
    def spawn(self, node: str, type: str, id: Any, user: str, work: Callable[[Task], Any],  # noqa: A002
              on_failure: Callable[[Task], Any] | None = None) -> str:
        """Start ``work(task)`` in a worker thread and return the task's UPID at once.

        ``on_failure(task)`` runs after any failure of the task, an injected one included (PVE's
        create and clone workers clean up after themselves whatever made them fail).
        """
        id_text = "" if id is None else str(id)
        starttime = int(time.time())
        pstart = self._pstart_base + int(time.monotonic() * 100) % 0x7FFFFFFF
        with self._lock:
            pid = next(self._pids)
        upid = format_upid(node, pid, pstart, starttime, type, id_text, user)
        task = Task(self, upid, {"node": node, "pid": pid, "pstart": pstart, "starttime": starttime,
                                 "type": type, "id": id_text, "user": user})
        with self._lock:
            self._running[upid] = task
        spawned = getattr(self._local, "spawned", None)
        if spawned is not None:
            spawned.append(task)
        # Recorded while it runs: a simulator killed now shows it after a restart as PVE shows a task
        # whose worker died (stopped, "unexpected status"), and the lock it held stays behind.
        self._save_archive(task)
        thread = threading.Thread(target=self._run, args=(task, work, on_failure), name=f"task-{type}-{pid:X}", daemon=True)
        thread.start()
        return upid

    def _run(self, task: Task, work: Callable[[Task], Any], on_failure: Callable[[Task], Any] | None) -> None:
        error: str | None = None
        try:
            fault = self.sim.faults.take_task_fault(task.type)
            if fault is not None:
                raise InjectedTaskFault(fault)
            work(task)
        except Exception as exc:  # every worker failure ends the task, as PVE's fork_worker does
            message = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
            error = str(message).rstrip("\n").replace("\n", " ")
            if not isinstance(exc, (TaskInterrupted, InjectedTaskFault, PVEError)):
                log.warning("task %s failed with an unexpected exception", task.upid, exc_info=True)
            if on_failure is not None:
                try:
                    on_failure(task)
                except Exception:  # the task failed already; its cleanup must not hide why
                    log.warning("cleanup of task %s failed", task.upid, exc_info=True)
        if error is None:
            task.log("TASK OK")
            task.exitstatus = "OK"
        else:
            task.log(f"TASK ERROR: {error}")
            task.exitstatus = error
        task.endtime = int(time.time())
        task.status = "stopped"
        with self._lock:
            self._running.pop(task.upid, None)
            self._finished[task.upid] = task
            while len(self._finished) > MAX_FINISHED_IN_MEMORY:
                self._finished.popitem(last=False)
        self._save_archive(task)               # on disk before anyone waiting for the task hears of it
        task.done.set()

    # --- request scoping: at task_scale 0 the HTTP layer waits so tasks look instant ------------
    def begin_request(self) -> None:
        self._local.spawned = []

    def end_request(self) -> list[Task]:
        spawned = getattr(self._local, "spawned", None) or []
        self._local.spawned = None
        return spawned

    # --- lookups -------------------------------------------------------------------------------
    def get(self, upid: str) -> Task | None:
        with self._lock:
            return self._running.get(upid) or self._finished.get(upid)

    def all_tasks(self) -> list[Task]:
        with self._lock:
            return list(self._running.values()) + list(self._finished.values())

    def stop(self, upid: str) -> None:
        task = self.get(upid)
        if task is not None and task.status == "running":
            task._stop.set()

    def wait(self, upid: str, timeout: float | None = None) -> Task | None:
        """Block until the task ended (tests and in-process callers)."""
        task = self.get(upid)
        if task is not None:
            task.done.wait(timeout)
        return task

    def wait_idle(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        for task in self.all_tasks():
            if not task.done.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True

    # --- archive -------------------------------------------------------------------------------
    # An append-only log, one JSON line per task start and end (O(1) per task, not a rewrite of the
    # whole bounded archive per task); replayed on start-up, the last line of a UPID winning;
    # rewritten with only the recent tasks when it holds COMPACT_FACTOR times more lines than that.
    def _save_archive(self, task: Task) -> None:
        if self._archive_file is None:
            return
        line = (json.dumps(task.to_json(), separators=(",", ":")) + "\n").encode("utf-8")
        with self._archive_write_lock:
            try:
                fd = os.open(self._archive_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    os.write(fd, line)
                finally:
                    os.close(fd)
                self._archive_lines += 1
                if self._archive_lines > COMPACT_FACTOR * MAX_PERSISTED:
                    self._compact_archive()
            except OSError:
                log.warning("could not persist the task archive", exc_info=True)

    def _compact_archive(self) -> None:
        with self._lock:
            recent = list(self._finished.values())[-MAX_PERSISTED:] + list(self._running.values())
            text = "".join(json.dumps(t.to_json(), separators=(",", ":")) + "\n" for t in recent)
        atomic_write_text(self._archive_file, text)
        self._archive_lines = len(recent)

    def _load_archive(self) -> None:
        if self._archive_file is None:
            return
        items: dict[str, dict[str, Any]] = {}
        try:
            raw = self._archive_file.read_bytes()
        except FileNotFoundError:
            return
        except OSError:
            log.warning("ignoring an unreadable task archive %s", self._archive_file)
            return
        lines = raw.split(b"\n")
        lines.pop()                                    # b"" after the last newline, or a torn line
        for line in lines:
            try:
                item = json.loads(line)
            except ValueError:
                log.warning("task archive %s has a damaged line; ignoring the rest", self._archive_file)
                break
            if isinstance(item, dict) and isinstance(item.get("upid"), str):
                items.pop(item["upid"], None)          # keep the order of the last record
                items[item["upid"]] = item
        self._archive_lines = len(lines)
        for item in list(items.values())[-MAX_PERSISTED:]:
            fields = parse_upid(item["upid"])
            if fields is None:
                continue
            task = Task(self, item["upid"], fields)
            task.lines = [str(line) for line in item.get("lines", [])]
            task.exitstatus = item.get("exitstatus") or "unexpected status"
            task.endtime = item.get("endtime") or fields["starttime"]
            task.status = "stopped"
            task.done.set()
            self._finished[task.upid] = task
