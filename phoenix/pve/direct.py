"""The client's fast path for reads: GET straight through urllib3, for API-token sessions.

A plan reads one config per VM.  Through proxmoxer and requests each GET costs about 1 ms of
client CPU (session merging, hooks, response wrapping), which made the client — not PVE — the
limit of a 1,000-VM plan; urllib3 alone (what requests itself sends with) costs about half.
It reads like the session path: the caller's deadline scope covers the whole answer, the body is
read with the size cap, redirects are not followed, and errors come out as requests' exception
types for the retry policy.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import requests
import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError, SSLError

from phoenix.pve.answer import read_body
from phoenix.pve.deadline import DeadlineHTTPSConnectionPool

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
        self._pool = DeadlineHTTPSConnectionPool(host, port, maxsize=max(1, pool_size), block=False,
                                                 timeout=urllib3.Timeout(connect=timeout, read=timeout),
                                                 retries=False, **tls)
        self._headers = {"Authorization": authorization, "Accept": "application/json"}

    def get(self, path: str, params: dict[str, Any]) -> tuple[int, str, str, bytes]:
        """``(status, reason, location, body)``, the body read whole (capped).  Raises requests' exceptions."""
        url = API_PREFIX + "/" + path.strip("/")
        if params:
            url += "?" + urlencode(params)
        try:
            response = self._pool.urlopen("GET", url, headers=self._headers, preload_content=False,
                                          retries=False, redirect=False)
            try:
                body = read_body(response, f"GET {path}")
            except BaseException:
                response.close()             # never hand a half-read connection back to the pool
                raise
            finally:
                response.release_conn()
        except SSLError as exc:
            raise requests.exceptions.SSLError(str(exc)) from None
        except NewConnectionError as exc:         # a subclass of ConnectTimeoutError: refused, no route
            raise requests.exceptions.ConnectionError(str(exc)) from None
        except ConnectTimeoutError as exc:
            raise requests.exceptions.ConnectTimeout(str(exc)) from None
        except ReadTimeoutError as exc:
            raise requests.exceptions.ReadTimeout(str(exc)) from None
        except (HTTPError, OSError) as exc:
            raise requests.exceptions.ConnectionError(str(exc)) from None
        return response.status, response.reason or "", response.headers.get("location", ""), body

    def close(self) -> None:
        self._pool.close()
