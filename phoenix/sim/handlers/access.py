"""``/access/ticket``: the login that hands out a ticket and CSRF token (PVE's ``create_ticket``)."""

from __future__ import annotations

from phoenix.sim.core import Request, route


@route("GET", "/access/ticket")
def get_ticket(req: Request) -> None:
    """PVE answers null here (the GUI uses it to show the login form)."""
    return None


@route("POST", "/access/ticket")
def create_ticket(req: Request) -> dict:
    """Password (or a still-valid ticket, for renewal) → ticket, CSRFPreventionToken, caps."""
    return req.sim.auth.login(req.params["username"], req.params["password"], req.params.get("realm"))
