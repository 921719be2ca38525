"""The simulator's seam between its HTTP layer and its PVE model.

The HTTP layer (``server``, ``auth``, ``schema``) turns a request into a :class:`Request` whose
``params`` already passed validation against PVE's real schema, looks the handler up in
:data:`ROUTES` and wraps the result in PVE's envelope.  Handlers (``phoenix/sim/handlers``)
only speak PVE semantics: they read and change the model and raise :class:`PVEError` exactly
as PVE's Perl code would ``die``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["PVEError", "param_error", "Request", "Paged", "route", "ROUTES"]


class PVEError(Exception):
    """An error PVE would answer with.

    ``message`` keeps PVE's trailing newline (it goes into the JSON ``message``); the HTTP
    reason line is its first line.  ``status`` is 500 for a plain ``die`` in PVE, 400 for
    parameter errors (with ``errors``), 401/403/501 where behaviors.md says so.
    """

    def __init__(self, message: str, status: int = 500, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = errors

    @property
    def reason(self) -> str:
        first = self.message.split("\n", 1)[0]
        return first or "Internal Server Error"


def param_error(errors: dict[str, str]) -> PVEError:
    """PVE's ``raise_param_exc``: 400 ``Parameter verification failed.`` with per-parameter messages."""
    return PVEError("Parameter verification failed.\n", status=400, errors=dict(errors))


@dataclass
class Paged:
    """A handler result that also carries PVE's ``total`` (task log, task list): ``{"data": ..., "total": n}``."""

    data: Any
    total: int


@dataclass
class Request:
    """One validated API call as a handler sees it."""

    method: str
    template: str                      # schema path template, e.g. "/nodes/{node}/qemu/{vmid}/config"
    path_params: dict[str, str]
    params: dict[str, Any]             # validated; integers/booleans already converted to int
    user: str                          # "root@pam" or, for API tokens, "root@pam!tokenid"
    sim: Any                           # the running Simulator (model, tasks, locks, settings)
    raw_body: bytes = b""
    # multipart uploads: name -> (client file name, temp file it was streamed to, or its bytes)
    files: dict[str, tuple[str, Any]] = field(default_factory=dict)

    @property
    def node(self) -> str:
        return self.path_params.get("node", "")

    @property
    def vmid(self) -> int:
        return int(self.path_params["vmid"])


Handler = Callable[[Request], Any]

# (METHOD, path template) -> handler.  Filled by the handler modules at import time.
ROUTES: dict[tuple[str, str], Handler] = {}


def route(method: str, template: str) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the handler for ``METHOD template`` (a path template of the shipped schema)."""

    def register(fn: Handler) -> Handler:
        key = (method.upper(), template)
        if key in ROUTES:
            raise RuntimeError(f"route registered twice: {method} {template}")
        ROUTES[key] = fn
        return fn

    return register
