"""``/nodes/{node}/tasks``: task list, status, log and stop (pve-manager ``PVE/API2/Tasks.pm``)."""

from __future__ import annotations

from typing import Any

from phoenix.sim.core import Paged, Request, param_error, route
from phoenix.sim.schema_formats import split_list
from phoenix.sim.tasks import Task, parse_upid


def _task(req: Request) -> Task:
    upid = req.params["upid"]
    if parse_upid(upid) is None:
        raise param_error({"upid": "unable to parse worker upid"})
    task = req.sim.tasks.get(upid)
    if task is None:
        raise param_error({"upid": "no such task"})
    return task


def _status_class(task: Task) -> str:
    status = task.exitstatus or ""
    if status == "OK":
        return "ok"
    if status.startswith("WARNINGS"):
        return "warning"
    if status == "unexpected status" or not status:
        return "unknown"
    return "error"


def _matches(task: Task, params: dict[str, Any]) -> bool:
    source = params.get("source", "archive")
    running = task.status == "running"
    if (source == "archive" and running) or (source == "active" and not running):
        return False
    if "vmid" in params and task.id != str(params["vmid"]):
        return False
    if params.get("typefilter") and task.type != params["typefilter"]:
        return False
    if params.get("userfilter") and params["userfilter"].lower() not in task.user.lower():
        return False
    if params.get("errors") and (running or task.exitstatus == "OK"):
        return False
    if params.get("statusfilter"):
        wanted = {item.lower() for item in split_list(params["statusfilter"])}
        if running or _status_class(task) not in wanted:
            return False
    if "since" in params and task.starttime < params["since"]:
        return False
    if "until" in params and task.starttime > params["until"]:
        return False
    return True


@route("GET", "/nodes/{node}/tasks")
def list_tasks(req: Request) -> Paged:
    """Newest first; ``total`` counts every match, ``start``/``limit`` page through them."""
    tasks = [t for t in req.sim.tasks.all_tasks() if t.node == req.node and _matches(t, req.params)]
    tasks.sort(key=lambda t: (t.starttime, t.pid), reverse=True)
    start = req.params.get("start", 0)
    limit = req.params.get("limit", 50)
    return Paged([t.list_view() for t in tasks[start:start + limit]], len(tasks))


@route("GET", "/nodes/{node}/tasks/{upid}")
def task_index(req: Request) -> list[dict[str, str]]:
    _task(req)
    return [{"name": "log"}, {"name": "status"}]


@route("GET", "/nodes/{node}/tasks/{upid}/status")
def task_status(req: Request) -> dict[str, Any]:
    return _task(req).status_view()


@route("GET", "/nodes/{node}/tasks/{upid}/log")
def task_log(req: Request) -> Paged:
    """PVE's ``dump_logfile``: 1-based ``n``, ``limit=0`` reads to the end, empty log → ``no content``."""
    lines = _task(req).log_lines()
    start = req.params.get("start", 0)
    limit = req.params.get("limit", 50)
    selected = lines[start:] if limit == 0 else lines[start:start + limit]
    result = [{"n": start + i + 1, "t": text} for i, text in enumerate(selected)]
    if not lines:
        return Paged([{"n": 1, "t": "no content"}], 1)
    return Paged(result, len(lines))


@route("DELETE", "/nodes/{node}/tasks/{upid}")
def stop_task(req: Request) -> None:
    """Interrupt a running worker (it ends with ``TASK ERROR: received interrupt``)."""
    task = _task(req)
    req.sim.tasks.stop(task.upid)
    return None
