"""Logging in with a password: ``POST /access/ticket`` through phoenix's bounded, redirect-free reader.

proxmoxer's own login follows redirects — re-sending the password to wherever a server points —
and reads any answer whole; here the login is one bounded POST whose answer is checked like any
other, and proxmoxer then signs requests with the ticket (and renews it) through :class:`TicketAuth`.
"""

from __future__ import annotations

import time
from typing import Any

import requests
from proxmoxer.backends.https import ProxmoxHTTPAuth, ProxmoxHTTPAuthBase

from phoenix.errors import PhoenixError
from phoenix.pve.answer import expect_dict, interpret_answer, read_response, str_field
from phoenix.pve.deadline import AnswerDeadline, DeadlineAdapter, whole_answer_within
from phoenix.pve.settings import ConnectionSettings

__all__ = ["TicketAuth", "ticket_login"]


class TicketAuth(ProxmoxHTTPAuth):  # type: ignore[misc]  # proxmoxer ships no types
    """proxmoxer's ticket auth (cookie + CSRF header), but logging in through phoenix's bounded,
    redirect-free reader — also when proxmoxer renews the ticket after an hour."""

    def __init__(self, settings: ConnectionSettings, verify: bool | str):
        ProxmoxHTTPAuthBase.__init__(self, timeout=settings.timeout, service="PVE", verify_ssl=verify)
        self.settings = settings
        self.verify = verify
        self.username = settings.username
        self.base_url = f"{settings.endpoint}/api2/json"
        self._get_new_tokens()

    def _get_new_tokens(self, password: Any = None, otp: Any = None, otptype: Any = None) -> None:
        self.pve_auth_ticket, self.csrf_prevention_token = ticket_login(self.settings, self.verify)
        self.birth_time = time.monotonic()


def ticket_login(settings: ConnectionSettings, verify: bool | str) -> tuple[str, str]:
    """POST /access/ticket → (ticket, CSRF token).  Never follows a redirect (the password would go along)."""
    assert settings.password is not None
    where = "POST /access/ticket"
    session = requests.Session()
    session.trust_env = False
    session.proxies.update(requests.utils.get_environ_proxies(settings.endpoint))
    session.mount("https://", DeadlineAdapter(pool_connections=1, pool_maxsize=1))
    credentials = {"username": settings.username, "password": settings.password.get_secret_value()}
    try:
        with whole_answer_within(settings.timeout) as scope:
            try:
                response = session.post(f"{settings.endpoint}/api2/json/access/ticket", data=credentials,
                                        verify=verify, timeout=settings.timeout, stream=True,
                                        allow_redirects=False)
                body = read_response(response, where)
            except requests.RequestException as exc:
                if scope.expired:
                    raise AnswerDeadline(str(exc)) from None
                raise
            if scope.expired:
                raise AnswerDeadline("the answer was cut off at the deadline")
    finally:
        session.close()
    if response.status_code in (401, 403):
        raise PhoenixError(f"authentication failed for {settings.username} at {settings.endpoint}")
    data = expect_dict(interpret_answer(response.status_code, response.reason or "", response.headers.get("location", ""),
                                  body, "POST", "/access/ticket"), where)
    if data.get("NeedTFA"):
        raise PhoenixError(f"{settings.username} needs a second factor to log in; use an API token "
                           "(PROXMOX_VE_API_TOKEN) instead")
    return str_field(data, "ticket", where, "data"), str_field(data, "CSRFPreventionToken", where, "data")
