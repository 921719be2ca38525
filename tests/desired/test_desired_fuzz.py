"""Random JSON never gets past validation as anything but ConfigError, and the CLI exits 1, not a traceback."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

from hypothesis import HealthCheck, given, settings, strategies as st
from typer.testing import CliRunner

from phoenix.desired import ConfigError, DesiredConfig, parse_desired
from desired_helpers import HERE, native_doc

KEYS = ["vm_defaults", "templates", "vms", "vmid", "name", "clone_from_vmid", "image", "url", "checksum",
        "checksum_url", "network_config", "ip", "gw", "nameservers", "user_config", "username", "password_hash",
        "ssh_public_key", "ssh_public_keys", "features", "tags", "is_template", "template_image", "template",
        "nameserver", "sftp", "snippets_backend", "customize", "packages", "cores", "start", "firewall"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30),
                    st.sampled_from(["dhcp", "10.0.0.5/24", "10.0.0.1", "$6$...", "docker", "base", "vmbr0"]),
                    st.integers(min_value=99, max_value=10_000))
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children,
                                               max_size=5)),
    max_leaves=30)


def _accepts_or_configerror(data) -> None:
    try:
        result = parse_desired(data, base_dir=HERE)
    except ConfigError as exc:
        assert exc.problems and "\n" not in str(exc)
        assert all(p.path and p.message for p in exc.problems)
    else:
        assert isinstance(result, DesiredConfig)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_random_documents(data):
    _accepts_or_configerror(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_mutations_of_a_valid_document(data):
    """Replace one value somewhere in a valid (native or legacy-looking) document with random JSON."""
    doc = copy.deepcopy(native_doc())
    if data.draw(st.booleans()):
        doc["vms"][0]["is_template"] = False  # switches to the original-project reader
        doc["vm_defaults"]["template"] = "noble"
        doc["vms"].insert(0, {"vmid": 8000, "name": "noble", "is_template": True,
                              "template_image": "noble-server-cloudimg-amd64.img"})
        del doc["templates"]
    node = doc
    while isinstance(node, (dict, list)) and node and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
        if not isinstance(node[key], (dict, list)) or data.draw(st.booleans()):
            node[key] = data.draw(json_values)
            break
        node = node[key]
    _accepts_or_configerror(doc)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_cli_validate_exits_1_without_traceback(data):
    from phoenix.cli import app
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "desired.json"
        path.write_text(json.dumps(data))
        result = CliRunner().invoke(app, ["--config", str(path), "validate"])
    assert result.exit_code in (0, 1), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


def test_cli_subprocess_on_garbage(tmp_path):
    path = tmp_path / "d.json"
    path.write_bytes(b'{"vms": [{"vmid": "x", "nmae": 1}], "templates": 7}')
    result = subprocess.run([sys.executable, "-m", "phoenix", "--config", str(path), "validate"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "vms[0].nmae: unknown key 'nmae' (did you mean 'name'?)" in result.stdout
    assert "templates: expected a JSON array" in result.stdout
