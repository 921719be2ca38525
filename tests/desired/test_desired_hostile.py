"""Hostile desired files (issue 14): trailing newlines, control characters, scope ids, '..' URLs,
and feature templates that try to reach the phoenix host."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

from phoenix.desired import ConfigError, parse_desired
from phoenix.desired import validators as v
from desired_helpers import ED25519, ED25519_2, HASH, native_doc


def full_doc() -> dict:
    """A valid native document in which every optional string field is set."""
    doc = native_doc(node="pve", storage_pool="local-lvm", network_bridge="vmbr0", tags=["web"],
                     network_config={"ip": "10.0.0.101/24", "gw": "10.0.0.1", "nameservers": ["10.0.0.53"],
                                     "searchdomain": "lab.example.org"},
                     user_config={"username": "phoenix_user", "password_hash": HASH, "ssh_public_key": ED25519,
                                  "ssh_public_keys": [ED25519_2]})
    doc["vm_defaults"].update({"storage_pool": "local-lvm", "network_bridge": "vmbr0", "snippets_storage": "local",
                               "sftp": {"host": "pve.lab", "username": "root", "key_file": "id_ed25519",
                                        "known_hosts": "known_hosts"}})
    doc["templates"][0].update({"node": "pve", "storage_pool": "local-lvm", "network_bridge": "vmbr0",
                                "customize": {"packages": ["htop"], "run_commands": ["true"]}})
    doc["templates"][0]["image"]["filename"] = "noble.img"
    return doc


def string_paths(data, path=()):
    """Every (path tuple) of a string value in ``data``."""
    if isinstance(data, str):
        yield path
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from string_paths(value, path + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from string_paths(value, path + (index,))


def json_path(parts) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def with_value(doc: dict, parts, change) -> dict:
    doc = copy.deepcopy(doc)
    target = doc
    for part in parts[:-1]:
        target = target[part]
    target[parts[-1]] = change(target[parts[-1]])
    return doc


def test_full_doc_is_valid(tmp_path):
    parse_desired(full_doc(), base_dir=tmp_path)


STRING_FIELDS = list(string_paths(full_doc()))


@pytest.mark.parametrize("parts", STRING_FIELDS, ids=json_path)
@pytest.mark.parametrize("suffix", ["\n", "\r\n", "\x00", "\x1b[2J", "\x85", "\ud800"],
                         ids=["newline", "crlf", "nul", "esc", "c1", "surrogate"])
def test_every_string_field_refuses_a_trailing_control_character(tmp_path, parts, suffix):
    doc = with_value(full_doc(), parts, lambda value: value + suffix)
    with pytest.raises(ConfigError) as info:
        parse_desired(doc, base_dir=tmp_path)
    paths = [p.path for p in info.value.problems]
    assert json_path(parts) in paths
    assert HASH not in str(info.value)


@pytest.mark.parametrize("check, good", [
    (v.check_hostname, "docker-vm-01"), (v.check_username, "phoenix_user"), (v.check_tag, "web"),
    (v.check_storage_id, "local-lvm"), (v.check_bridge, "vmbr0"), (v.check_node, "pve"),
    (v.check_url, "https://example.org/a.img"), (v.check_filename, "a.img"), (v.check_password_hash, HASH),
    (v.check_feature_name, "docker"),
])
def test_validators_match_the_whole_string(check, good):
    assert check(good)
    with pytest.raises(ValueError):
        check(good + "\n")


@pytest.mark.parametrize("bad", ["fe80::1%eth0", "fe80::1%$(reboot)", "10.0.0.1\n", "::1%1"])
def test_nameservers_are_plain_addresses(tmp_path, bad):
    doc = native_doc(network_config={"ip": "10.0.0.101/24", "gw": "10.0.0.1", "nameservers": [bad]})
    with pytest.raises(ConfigError) as info:
        parse_desired(doc, base_dir=tmp_path)
    assert [p.path for p in info.value.problems] == ["vms[0].network_config.nameservers[0]"]


@pytest.mark.parametrize("url", ["https://example.org/images/..", "https://example.org/images/%2e%2e",
                                 "https://example.org/a/../b.img", "https://example.org/."])
def test_image_url_with_dot_segments_is_refused(tmp_path, url):
    doc = native_doc()
    doc["templates"][0]["image"]["url"] = url
    with pytest.raises(ConfigError) as info:
        parse_desired(doc, base_dir=tmp_path)
    assert info.value.problems[0].path == "templates[0].image.url"
    assert "'.' or '..'" in info.value.problems[0].message


def test_lone_surrogate_and_nul_in_a_key_comment_stop_at_validate(tmp_path):
    for comment in ("\ud800", "a\x00b"):
        doc = native_doc(user_config={"username": "phoenix_user", "ssh_public_key": ED25519 + comment})
        with pytest.raises(ConfigError) as info:
            parse_desired(doc, base_dir=tmp_path)
        assert info.value.problems[0].path == "vms[0].user_config.ssh_public_key"
        assert "control character" in info.value.problems[0].message


def test_control_character_in_a_key_is_named_escaped(tmp_path):
    doc = native_doc()
    doc["vms"][0]["na\x1bme"] = "x"
    with pytest.raises(ConfigError) as info:
        parse_desired(doc, base_dir=tmp_path)
    assert info.value.problems[0].path == 'vms[0]["na\\u001bme"]'


# --- feature templates: the sandbox -------------------------------------------------------------

ESCAPES = [
    '{{ cycler.__init__.__globals__.os.system("touch MARKER") }}',
    '{{ joiner.__init__.__globals__.os.system("touch MARKER") }}',
    '{{ namespace.__init__.__globals__.os.system("touch MARKER") }}',
    '{{ lipsum.__globals__["os"].system("touch MARKER") }}',
    '{{ "".__class__.__mro__[1].__subclasses__() }}',
    '{{ vm_name.__class__ }}',
    '{{ self.__init__.__globals__ }}',
    '{{ features.pop.__self__.__class__ }}',
    '{{ environ["PROXMOX_VE_API_TOKEN"] }}',
    '{{ range(10**9) | list }}',
    '{% for x in tags.__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}',
    '{% include "/etc/passwd" %}',
    '{% include "../x.sh.j2" %}',
]


@pytest.mark.parametrize("payload", ESCAPES)
def test_feature_template_cannot_reach_the_host(tmp_path, payload, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROXMOX_VE_API_TOKEN", "root@pam!phoenix=secret-token-value")
    (tmp_path / "features").mkdir()
    (tmp_path / "features" / "evil.sh.j2").write_text(f"#!/bin/bash\necho hi\n{payload}\n")
    with pytest.raises(ConfigError) as info:
        parse_desired(native_doc(features=["evil"]), base_dir=tmp_path)
    problem = info.value.problems[0]
    assert problem.path == "vms[0].features[0]"
    assert "evil.sh.j2" in problem.message and "line 3" in problem.message, problem.message
    assert not (tmp_path / "MARKER").exists()
    assert "secret-token-value" not in str(info.value)


def test_feature_template_sees_the_documented_values(tmp_path):
    (tmp_path / "features").mkdir()
    (tmp_path / "features" / "ok.sh.j2").write_text(
        "#!/bin/bash\necho {{ vm_name | shquote }} {{ nameservers | join(',') }} {{ tags | length }}"
        " {% for f in features %}{{ f | upper }}{% endfor %}\n")
    config = parse_desired(native_doc(features=["ok"]), base_dir=tmp_path)
    from phoenix.desired.features import available_features, render_feature
    text = render_feature("ok", available_features(tmp_path)["ok"], config.vms[0])
    assert text == "#!/bin/bash\necho docker-vm-01 10.0.0.1 0 OK\n"


def test_feature_file_that_is_a_symlink_is_refused(tmp_path):
    (tmp_path / "features").mkdir()
    secret = tmp_path / "host-secret.sh"
    secret.write_text("#!/bin/bash\necho host secret\n")
    os.symlink(secret, tmp_path / "features" / "leak.sh")
    with pytest.raises(ConfigError) as info:
        parse_desired(native_doc(features=["leak"]), base_dir=tmp_path)
    assert "symbolic link" in info.value.problems[0].message
