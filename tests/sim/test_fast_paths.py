"""The simulator's fast paths for reads (``phoenix plan`` at 10,000 VMs) give what the slow paths give.

Each fast path keeps its slow original next to it (or here, as it was) as the reference.
"""

from __future__ import annotations

import io
import re
from typing import Any
from urllib.parse import unquote

from hypothesis import given, settings
from hypothesis import strategies as st

from phoenix.sim import propstr
from phoenix.sim import request as sim_request_module
from phoenix.sim.handlers._vmutil import _memory_mib
from phoenix.sim.handlers.config import _pending_items
from phoenix.sim.model.guest import boot_disk, boot_disk_key
from phoenix.sim.model.vm import DRIVE_KEY_RE, _config_types, _encode_chars, drive_keys, encode_text, typed_config
from phoenix.sim.schema import Router, _format_kind

# --- encode_text -------------------------------------------------------------------------------

texts = st.one_of(
    st.text(),
    st.text(st.sampled_from("abc :%#\t\r\x7f\x80é€\U0001f600-_=/"), max_size=40),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80),
)


@given(texts)
def test_encode_text_fast_path_equals_the_character_loop(text):
    assert encode_text(text) == _encode_chars(text)


# --- typed_config ------------------------------------------------------------------------------

def _typed_config_reference(conf: dict[str, Any]) -> dict[str, Any]:
    """typed_config as it was: a type lookup (regex for indexed keys) and a regex per key per call."""
    types = _config_types()
    result: dict[str, Any] = {}
    for key, value in conf.items():
        if key in types:
            kind = types[key]
        else:
            match = re.fullmatch(r"([a-z]+)\d+", key)
            kind = types.get(f"{match.group(1)}[n]", "string") if match else "string"
        if kind in ("integer", "boolean") and re.fullmatch(r"-?\d+", str(value)):
            result[key] = int(value)
        else:
            result[key] = str(value)
    return result


config_keys = st.one_of(st.sampled_from(sorted(_config_types())),
                        st.from_regex(r"(net|scsi|numa|ipconfig|unused|ide|hostpci|foo)[0-9]{1,3}", fullmatch=True),
                        st.text(max_size=12))
config_values = st.one_of(st.from_regex(r"-?[0-9]{1,6}", fullmatch=True), st.text(max_size=12), st.integers())


@given(st.dictionaries(config_keys, config_values, max_size=12))
def test_typed_config_equals_the_uncached_lookup(conf):
    typed = typed_config(conf)
    assert typed == _typed_config_reference(conf)
    assert [type(v) for v in typed.values()] == [type(v) for v in _typed_config_reference(conf).values()]


# --- GET .../pending of a VM without pending changes -----------------------------------------------

@given(st.dictionaries(st.text(max_size=8), st.one_of(st.text(max_size=8), st.integers()), max_size=12))
def test_pending_without_changes_is_the_general_listing(conf):
    fast = [{"key": key, "value": value} for key, value in sorted(conf.items())]   # get_pending's short cut
    assert fast == _pending_items(conf, {}, {})


# --- Router ------------------------------------------------------------------------------------

ROUTER = Router()


def _match_each(path: str) -> Any:
    """The router as it was: the first template whose own regex matches (the reference for ``_match``)."""
    path = path.rstrip("/") or "/"
    for regex, template, by_method in ROUTER._routes:
        found = regex.match(path)
        if found:
            return template, {k: unquote(v) for k, v in found.groupdict().items()}, by_method
    return None
segments = st.one_of(st.sampled_from(["nodes", "pve", "qemu", "100", "config", "pending", "storage", "local",
                                      "content", "local:iso", "snapshot", "s1", "tasks", "status", "current",
                                      "agent", "exec", "version", "cluster", "resources", "access", "ticket",
                                      "", "%2F", "a%20b", "\n", "x\ny"]),
                     st.text(max_size=6))


@given(st.lists(segments, max_size=9), st.booleans(), st.sampled_from(["", "/", "\n", "//"]))
def test_router_alternation_equals_trying_each_template(parts, leading, tail):
    path = ("/" if leading else "") + "/".join(parts) + tail
    assert ROUTER._match(path) == _match_each(path)


def test_router_alternation_on_every_template():
    for _regex, template, _methods in ROUTER._routes:
        path = re.sub(r"\{(\w+)\}", lambda m: "local:iso/a/b.iso" if m.group(1) == "volume" else f"{m.group(1)}-1",
                      template)
        assert ROUTER._match(path) == _match_each(path)
        assert ROUTER._match(path)[0] == template


@given(st.text(max_size=20))
def test_format_kind_equals_the_regex(fmt):
    def outcome(parse):
        try:
            return parse()
        except AttributeError as exc:          # no match: a format with a newline in it
            return str(exc)
    match = re.match(r"^(.*?)(?:-(list|opt))?$", fmt)
    assert outcome(lambda: _format_kind(fmt)) == outcome(lambda: (match.group(1), match.group(2) or "none"))


# --- response head -----------------------------------------------------------------------------

class _Handler(sim_request_module.RequestHandler):
    def __init__(self, version: str, close: bool):          # no socket: only what _send uses
        self.wfile = io.BytesIO()
        self.request_version = version
        self.requestline = "GET /api2/json/version HTTP/1.1"
        self.close_connection = close

    def date_time_string(self, timestamp: float | None = None) -> str:
        return "Mon, 30 Nov 2026 12:00:00 GMT"


@given(st.sampled_from(["HTTP/1.1", "HTTP/1.0"]), st.booleans(), st.sampled_from([200, 400, 401, 500, 501, 503]),
       st.text(max_size=30), st.binary(max_size=40), st.sampled_from([sim_request_module.CONTENT_TYPE, "text/plain"]))
def test_response_head_equals_the_stdlib_methods(version, close, status, reason, body, content_type):
    fast, slow = _Handler(version, close), _Handler(version, close)
    fast._send(status, reason, body, content_type)
    cleaned = reason.replace("\r", " ").replace("\n", " ").encode("latin-1", "replace").decode("latin-1")
    slow._send_via_stdlib(status, cleaned, body, content_type)
    assert fast.wfile.getvalue() == slow.wfile.getvalue()
    assert fast.close_connection == slow.close_connection


def test_json_answers_are_what_json_dumps_prints():
    import json
    payload = {"data": [{"key": "a", "value": 1}, {"key": "é", "value": None, "x": [1.5, True, "\n"]}]}
    assert sim_request_module._JSON.encode(payload) == json.dumps(payload, separators=(",", ":"))


# --- /cluster/resources: boot disk and memory of every VM ----------------------------------------

def _drive_keys_reference(conf: dict[str, str]) -> list[str]:
    def order(key: str) -> tuple[int, int]:
        bus = re.match(r"^[a-z]+", key).group(0)
        num = int(key[len(bus):] or 0)
        order = ("ide", "sata", "scsi", "virtio")
        return (order.index(bus) if bus in order else len(order), num)
    return sorted((k for k in conf if DRIVE_KEY_RE.match(k) and not k.startswith("unused")), key=order)


def _boot_disk_key_reference(conf: dict[str, str]) -> str | None:
    order = propstr.split(conf.get("boot", ""), default_key="legacy").get("order", "")
    for key in [k for k in order.split(";") if k] + _drive_keys_reference(conf):
        value = conf.get(key)
        if value and propstr.parse_drive(value).get("media") != "cdrom":
            return key
    return None


def _outcome(function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except (propstr.PropertyStringError, ValueError) as exc:
        return type(exc), str(exc)


drive_values = st.one_of(st.sampled_from(["local:100/vm-100-disk-0.qcow2,size=16G", "none,media=cdrom",
                                          "local:iso/x.iso,media=cdrom", "shared-nfs:9/vm-9-cloudinit.qcow2,media=cdrom",
                                          "local:1/a.raw,size=1.5G", "x=1,,y", "", "local:1/b,size=oops"]),
                         st.text(st.sampled_from("abc=,:;/0G"), max_size=12))
vm_confs = st.dictionaries(
    st.one_of(st.sampled_from(["ide0", "ide2", "sata1", "scsi0", "scsi10", "scsi2", "virtio0", "efidisk0", "unused0",
                               "tpmstate0", "net0", "memory", "name"]),
              st.from_regex(r"(ide|sata|scsi|virtio|unused)[0-9]{1,2}", fullmatch=True)),
    drive_values, max_size=6)
boot_values = st.one_of(st.none(), st.sampled_from(["order=scsi0", "order=ide2;scsi0;net0", "order=net0", "cdn",
                                                    "order=", "legacy=cdn,order=virtio0", "order=scsi0,order=ide0"]),
                        st.text(st.sampled_from("order=;scsi0ide2,"), max_size=16))


@given(vm_confs, boot_values)
def test_boot_disk_equals_the_eager_listing(conf, boot):
    if boot is not None:
        conf = dict(conf, boot=boot)
    assert drive_keys(conf) == _drive_keys_reference(conf)
    assert _outcome(boot_disk_key, conf) == _outcome(_boot_disk_key_reference, conf)
    expected = _outcome(_boot_disk_key_reference, conf)
    found = _outcome(boot_disk, conf)
    if isinstance(expected, tuple):                          # an error, the same one
        assert found == expected
    elif expected is None:
        assert found is None
    else:
        assert found == (expected, propstr.parse_drive(conf[expected]))


@given(st.one_of(st.sampled_from(["1024", "current=2048", "2048,balloon=0", "", "x", "current=1,current=2"]),
                 st.text(st.sampled_from("current=12,x"), max_size=14)))
def test_memory_parse_equals_the_uncached_one(memory):
    def reference(text: str) -> int:
        return int(propstr.split(text, default_key="current").get("current", 512))
    assert _outcome(_memory_mib, memory) == _outcome(reference, memory)
    assert _outcome(_memory_mib, memory) == _outcome(reference, memory)      # cached now (or raising again)
