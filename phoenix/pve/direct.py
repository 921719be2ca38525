"""The client's fast path for reads: GET straight through urllib3, for API-token sessions.

A plan reads one config per VM.  Through proxmoxer and requests each GET costs about 1 ms of
client CPU (session merging, hooks, response wrapping), which made the client — not PVE — the
limit of a 1,000-VM plan; urllib3 alone (what requests itself sends with) costs about half.
Errors come out exactly as on the requests path: PVE's status and reason line, its per-parameter
``errors``, and requests' exception types for the retry policy.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import requests
import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError, SSLError

API_PREFIX = "/api2/json"


class DirectGet:
    """Sends token-authenticated GETs over its own connection pool (same host, TLS and timeout)."""

    def __init__(self, host: str, port: int, authorization: str, verify: bool | str, timeout: float,
                 pool_size: int):
        tls: dict[str, Any] = {"cert_reqs": "CERT_NONE"}
        if verify is True:
            tls = {"cert_reqs": "CERT_REQUIRED"}                 # the system store
        elif verify:
            tls = {"cert_reqs": "CERT_REQUIRED", "ca_certs": str(verify)}
        self._pool = urllib3.HTTPSConnectionPool(host, port, maxsize=max(1, pool_size), block=False,
                                                 timeout=urllib3.Timeout(total=timeout), retries=False, **tls)
        self._headers = {"Authorization": authorization, "Accept": "application/json"}

    def get(self, path: str, params: dict[str, Any]) -> tuple[int, str, Any]:
        """``(status, reason, body)``; body is the decoded JSON (or None).  Raises requests' exceptions."""
        url = API_PREFIX + "/" + path.strip("/")
        if params:
            url += "?" + urlencode(params)
        try:
            response = self._pool.request("GET", url, headers=self._headers)
        except SSLError as exc:
            raise requests.exceptions.SSLError(str(exc)) from None
        except NewConnectionError as exc:         # a subclass of ConnectTimeoutError: refused, no route
            raise requests.exceptions.ConnectionError(str(exc)) from None
        except ConnectTimeoutError as exc:
            raise requests.exceptions.ConnectTimeout(str(exc)) from None
        except ReadTimeoutError as exc:
            raise requests.exceptions.ReadTimeout(str(exc)) from None
        except HTTPError as exc:
            raise requests.exceptions.ConnectionError(str(exc)) from None
        try:
            body = json.loads(response.data) if response.data else None
        except ValueError:
            body = None
        return response.status, response.reason or "", body

    def close(self) -> None:
        self._pool.close()
