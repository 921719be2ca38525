"""The simulator's HTTP envelope, routing and error format, over real HTTPS."""

from __future__ import annotations

import json
import time

import pytest
import requests
from proxmoxer.core import ResourceException

from phoenix.sim.core import ROUTES, Paged, PVEError


def _token_header(server) -> dict[str, str]:
    return {"Authorization": f"PVEAPIToken={server.api_token}"}


@pytest.fixture
def swap_route():
    """Temporarily replace (or remove, with None) the handler of one schema endpoint."""
    saved: dict = {}

    def swap(method: str, template: str, handler):
        key = (method, template)
        if key not in saved:
            saved[key] = ROUTES.get(key)
        if handler is None:
            ROUTES.pop(key, None)
        else:
            ROUTES[key] = handler

    yield swap
    for key, handler in saved.items():
        if handler is None:
            ROUTES.pop(key, None)
        else:
            ROUTES[key] = handler


def test_success_envelope_headers_and_null_data(sim_server):
    response = requests.get(f"{sim_server.endpoint}/api2/json/access/ticket", verify=sim_server.ca_file, timeout=10)
    assert response.status_code == 200
    assert response.headers["Server"] == "pve-api-daemon/3.0"
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert response.json() == {"data": None}


def test_paged_results_carry_total(sim_server, swap_route):
    swap_route("GET", "/version", lambda req: Paged([{"n": 1}], 7))
    response = requests.get(f"{sim_server.endpoint}/api2/json/version", headers=_token_header(sim_server),
                            verify=sim_server.ca_file, timeout=10)
    assert response.json() == {"data": [{"n": 1}], "total": 7}


def test_unknown_path_is_501_with_pves_text(proxmox):
    with pytest.raises(ResourceException) as caught:
        proxmox.nodes("pve").qemu(100).foo.get()
    assert caught.value.status_code == 501
    assert caught.value.content == "Method 'GET /nodes/pve/qemu/100/foo' not implemented"


def test_unknown_method_on_known_path_is_501(sim_server):
    response = requests.put(f"{sim_server.endpoint}/api2/json/nodes/pve/tasks", headers=_token_header(sim_server),
                            verify=sim_server.ca_file, timeout=10)
    assert response.status_code == 501
    assert response.reason == "Method 'PUT /nodes/pve/tasks' not implemented"
    assert response.json()["message"] == "Method 'PUT /nodes/pve/tasks' not implemented"


def test_schema_endpoint_without_handler_is_501(proxmox, swap_route):
    swap_route("GET", "/version", None)
    with pytest.raises(ResourceException) as caught:
        proxmox.version.get()
    assert caught.value.status_code == 501
    assert caught.value.content == "Method 'GET /version' not implemented"


def test_pve_error_reason_is_first_line_and_body_keeps_message(sim_server, swap_route):
    def locked(req):
        raise PVEError("VM is locked (clone)\nsecond line\n")

    swap_route("GET", "/version", locked)
    response = requests.get(f"{sim_server.endpoint}/api2/json/version", headers=_token_header(sim_server),
                            verify=sim_server.ca_file, timeout=10)
    assert response.status_code == 500
    assert response.reason == "VM is locked (clone)"
    assert response.json() == {"data": None, "message": "VM is locked (clone)\nsecond line\n"}


def test_handler_bug_is_500_with_text_and_server_survives(sim_server, proxmox, swap_route, caplog):
    def broken(req):
        raise KeyError("boom")

    swap_route("GET", "/version", broken)
    with caplog.at_level("ERROR", logger="phoenix.sim.server"):
        response = requests.get(f"{sim_server.endpoint}/api2/json/version", headers=_token_header(sim_server),
                                verify=sim_server.ca_file, timeout=10)
    assert response.status_code == 500
    assert response.json()["message"] == "'boom'\n"
    assert "Traceback" not in response.text
    assert any("internal error" in record.message for record in caplog.records)
    assert proxmox.nodes("pve").tasks.get() == []          # still serving


def test_params_from_json_body_form_and_query(sim_server, swap_route):
    seen: list[dict] = []

    def echo(req):
        seen.append(dict(req.params))
        return None

    swap_route("POST", "/nodes/{node}/qemu/{vmid}/config", echo)
    url = f"{sim_server.endpoint}/api2/json/nodes/pve/qemu/100/config"
    common = {"headers": _token_header(sim_server), "verify": sim_server.ca_file, "timeout": 10}
    assert requests.post(url, json={"cores": 2, "onboot": True, "name": "a"}, **common).status_code == 200
    assert requests.post(url + "?cores=4&_dc=123", data={"cores": "2", "onboot": "0"}, **common).status_code == 200
    assert seen[0] == {"cores": 2, "onboot": 1, "name": "a", "node": "pve", "vmid": 100}
    assert seen[1] == {"cores": 4, "onboot": 0, "node": "pve", "vmid": 100}   # query wins, _dc dropped


def test_body_on_get_is_refused(sim_server):
    response = requests.get(f"{sim_server.endpoint}/api2/json/nodes/pve/tasks", data="limit=1",
                            headers=_token_header(sim_server), verify=sim_server.ca_file, timeout=10)
    assert response.status_code == 501
    assert response.reason == "Unexpected content for method 'GET'"


def test_bad_json_body_is_a_400(sim_server, swap_route):
    swap_route("POST", "/nodes/{node}/qemu/{vmid}/config", lambda req: None)
    response = requests.post(f"{sim_server.endpoint}/api2/json/nodes/pve/qemu/100/config", data="{nope",
                             headers={**_token_header(sim_server), "Content-Type": "application/json"},
                             verify=sim_server.ca_file, timeout=10)
    assert response.status_code == 400
    assert json.loads(response.text)["data"] is None


def test_multipart_fields_and_files_reach_the_handler(sim_server, swap_route):
    seen = []

    def upload(req):
        name, path = req.files["filename"]           # streamed to a temp file, as PVE does
        seen.append((dict(req.params), {"filename": (name, path.read_bytes())}, path))
        return None

    swap_route("POST", "/nodes/{node}/storage/{storage}/upload", upload)
    response = requests.post(f"{sim_server.endpoint}/api2/json/nodes/pve/storage/local/upload",
                             data={"content": "iso"}, files={"filename": ("tiny.iso", b"\x00ISO")},
                             headers=_token_header(sim_server), verify=sim_server.ca_file, timeout=10)
    assert response.status_code == 200, response.text
    params, files, temp = seen[0]
    assert params["content"] == "iso" and params["storage"] == "local"
    assert files["filename"] == ("tiny.iso", b"\x00ISO")
    for _ in range(200):                             # removed once the answer is out
        if not temp.exists():
            break
        time.sleep(0.05)
    assert not temp.exists()                         # a temp file no handler took is removed


def test_outside_api2_is_404(sim_server):
    response = requests.get(f"{sim_server.endpoint}/index.html", verify=sim_server.ca_file, timeout=10)
    assert response.status_code == 404


def test_tls_is_verified_with_the_ca_for_every_san(sim_server):
    port = sim_server.port
    response = requests.get(f"https://localhost:{port}/api2/json/access/ticket", verify=sim_server.ca_file, timeout=10)
    assert response.status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{sim_server.endpoint}/api2/json/access/ticket", verify=True, timeout=10)


def test_an_http_0_9_request_gets_a_bare_body_and_the_connection_closes(sim_server, caplog):
    """HTTP/0.9 has no header block either way: the answer is the body alone (a request without
    headers carries no token, so a bare 401), then EOF — the handler no longer trips over its
    missing header buffer and closes the connection without an answer."""
    import socket
    import ssl

    context = ssl.create_default_context(cafile=str(sim_server.ca_file))
    with caplog.at_level("DEBUG", logger="phoenix.sim.server"):
        with socket.create_connection(("127.0.0.1", sim_server.port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
            conn.sendall(b"GET /_sim/stats\r\n\r\n")     # (http.server reads a header block after it too)
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
    assert not answer.startswith(b"HTTP/"), "HTTP/0.9 answers carry no status line or headers"
    assert json.loads(answer)["total"] >= 0
    assert not any(record.exc_info for record in caplog.records)
