"""The simulator's HTTPS server: a listening socket, TLS, and who answers each connection.

By default the event front (:mod:`phoenix.sim.event_front`) reads every connection from one
thread and answers plain reads itself; anything else gets a thread of its own, as
``ThreadingHTTPServer`` gives every connection with ``event_front=False`` (the reference front).
Either way one request is :class:`phoenix.sim.request.RequestHandler`'s.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from phoenix.sim.event_front import EventFront
from phoenix.sim.request import BufferedRequest, HandedOver, RequestHandler, is_read, latency_seconds, load_handlers
from phoenix.sim.simulator import Settings, Simulator

__all__ = ["SimServer"]

log = logging.getLogger("phoenix.sim.server")

class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog is 5: a client opening dozens of connections at once (phoenix's
    # readers, a Terraform apply) would see SYNs dropped and retried a second later
    request_queue_size = 128
    sim: Simulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished mid-request (killed, timed out, TLS aborted) is logged, not printed."""
        log.debug("connection from %s ended abnormally", client_address, exc_info=True)


class SimServer:
    """A started-on-demand simulated PVE over HTTPS; use as a context manager or start()/stop()."""

    def __init__(self, data_dir: Path | str, nodes: list[str] | None = None, host: str = "127.0.0.1",
                 port: int = 0, latency_ms: float = 0.0, task_scale: float = 0.0,
                 auth_fail_delay: float = 3.0, agent_boot_seconds: float = 3.0, guest_image: Path | None = None,
                 guest_memory_mb: int = 1024, guest_cpus: int = 1, event_front: bool = True):
        load_handlers()
        settings = Settings(nodes=list(nodes or ["pve"]), data_dir=Path(data_dir), task_scale=float(task_scale),
                            latency_ms=float(latency_ms), agent_boot_seconds=float(agent_boot_seconds),
                            auth_fail_delay=float(auth_fail_delay), guest_image=guest_image,
                            guest_memory_mb=guest_memory_mb, guest_cpus=guest_cpus)
        self.sim = Simulator(settings)
        self.host = host
        self._requested_port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._event_front = event_front       # False: a thread per connection for all (the reference front)
        self._front: EventFront | None = None

    # --- what callers use ------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("SimServer is not started")
        return self._httpd.server_address[1]

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def ca_file(self) -> str:
        return str(self.sim.tls.ca_file)

    @property
    def api_token(self) -> str:
        return self.sim.credentials.api_token

    @property
    def root_password(self) -> str:
        return self.sim.credentials.root_password

    def start(self) -> "SimServer":
        if self._httpd is not None:
            return self
        server_class = type("_SimHTTPServer", (_HTTPServer,),
                            {"address_family": socket.AF_INET6 if ":" in self.host else socket.AF_INET})
        httpd = server_class((self.host, self._requested_port), RequestHandler, bind_and_activate=True)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.sim.tls.cert_file, self.sim.tls.key_file)
        # handshake in the connection's own thread, so one slow client cannot block accept()
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        httpd.sim = self.sim
        self._httpd = httpd
        if self._event_front:
            sim = self.sim
            self._front = EventFront(httpd, BufferedRequest, HandedOver, is_read, lambda: latency_seconds(sim),
                                     sim.stats)
            self._front.start(name=f"sim-server-{self.port}")
            return self
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"sim-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        if self._front is not None:
            self._front.stop()
            self._front = None
        else:
            self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sim.tasks.wait_idle(timeout=5)
        if self.sim.guests is not None:
            self.sim.guests.close()      # no QEMU outlives the simulator
        self._httpd = None
        self._thread = None

    def __enter__(self) -> "SimServer":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
