"""The attribute registry: every entry round-trips through the simulator (write, read back, no diff),
removable ones can be removed, and the flags that drive the plan are where the plan looks for them.

A new registry entry fails ``test_every_pve_attribute_has_a_strategy`` until it gets a strategy
here: a setting nobody round-tripped through PVE does not land.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phoenix.diff import attributes as reg
from phoenix.diff import codecs
from phoenix.diff.engine import compare
from phoenix.diff.views import actual_view, narrowed
from phoenix.pve import propstr

NODE, VMID = "pve", 100
PATH = f"/nodes/{NODE}/qemu/{VMID}"
KEYS = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq3Ch1bZxgaHtHk3DJhjYyFL4E4XGRIgIkEEHx2k8Gc other@host"]
LABEL = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
OCTET = st.integers(1, 254)


def _ipconfig() -> st.SearchStrategy[str]:
    static = st.tuples(OCTET, OCTET, st.sampled_from([8, 16, 24])).map(
        lambda t: {"ip": f"10.{t[0]}.{t[1]}.5/{t[2]}", "gw": f"10.{t[0]}.{t[1]}.1"})
    static6 = st.tuples(st.integers(1, 0xffff), st.sampled_from([48, 64])).map(
        lambda t: {"ip6": f"2001:db8:{t[0]:x}::5/{t[1]}", "gw6": f"2001:db8:{t[0]:x}::1"})
    six = st.one_of(st.just({}), st.just({"ip6": "dhcp"}), st.just({"ip6": "auto"}), static6,
                    st.just({"ip6": "2001:db8::7/64", "gw6": "fe80::1"}))
    four = st.one_of(st.just({"ip": "dhcp"}), static)
    return st.tuples(four, six).map(lambda t: propstr.format_ipconfig({**t[0], **t[1]}))


MAC = st.tuples(st.sampled_from([0x02, 0xBC, 0x52]), st.lists(st.integers(0, 255), min_size=5, max_size=5)).map(
    lambda t: ":".join(f"{b:02X}" for b in [t[0], *t[1]]))


@st.composite
def _nic(draw) -> dict:
    """A NIC in the registry's normal form (optional keys absent when not set)."""
    nic = {"bridge": draw(st.sampled_from(["vmbr0", "vmbr1"])),
           "model": draw(st.sampled_from(["virtio", "e1000", "vmxnet3", "rtl8139"]))}
    for name, strategy in (("vlan", st.integers(1, 4094)), ("mac", MAC), ("firewall", st.just(True))):
        if draw(st.booleans()):
            nic[name] = draw(strategy)
    if nic["model"] == "virtio" and draw(st.booleans()):
        nic["mtu"] = draw(st.integers(576, 9000))
    return nic


@st.composite
def _disk(draw, slot: str) -> dict:
    disk = {"size_gb": draw(st.integers(1, 4)), "storage": "local-lvm"}
    options = [o for o in ("ssd", "discard", "iothread")
               if not (o == "ssd" and slot.startswith("virtio")) and not (o == "iothread" and slot.startswith("sata"))]
    disk.update({o: True for o in options if draw(st.booleans())})
    return disk


def _maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """NICs beyond the first are mostly absent (None removes them), so an example stays small."""
    return st.one_of(st.none(), st.none(), strategy)


# Desired values, in the registry's normal form, for every attribute PVE can show.
STRATEGIES: dict[str, st.SearchStrategy] = {
    "name": st.lists(LABEL, min_size=1, max_size=2).map(".".join),
    "cores": st.integers(1, 16),
    "memory_mb": st.integers(1, 256).map(lambda n: n * 128),
    "disk_size_gb": st.integers(2, 64),
    "net0": _nic(),
    **{f"net{i}": _maybe(_nic()) for i in range(1, reg.MAX_NICS)},
    "agent": st.one_of(st.booleans(), st.fixed_dictionaries({
        "freeze-fs": st.booleans(), "fstrim_cloned_disks": st.booleans(), "type": st.sampled_from(["virtio", "isa"])})),
    "cpu": st.sampled_from(["host", "x86-64-v2-AES", "kvm64", "Skylake-Server-v4"]),
    "sockets": st.integers(1, 4),
    "balloon_mb": st.integers(0, 64).map(lambda n: n * 64),
    "onboot": st.booleans(),
    "startup": st.fixed_dictionaries({"order": st.integers(0, 99)},
                                     optional={"up": st.integers(0, 600), "down": st.integers(0, 600)}),
    "description": st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs", "Zl", "Zp"]) | st.just("\n"),
                           min_size=1, max_size=40).map(lambda t: "\n".join(
                               x for x in t.splitlines() if not x.lstrip().startswith("phoenix-")).strip("\n"))
                   .filter(bool),
    "machine": st.sampled_from(["q35", "i440fx"]),
    "bios": st.sampled_from(["seabios", "ovmf"]),
    "efidisk0": st.just({"storage": "local-lvm", "efitype": "4m"}),
    "scsihw": st.sampled_from(["lsi", "virtio-scsi-pci", "virtio-scsi-single", "megasas", "pvscsi"]),
    "serial0": st.just("socket"),
    "vga": st.sampled_from(["serial0", "std", "virtio"]),
    "tags": st.lists(st.from_regex(r"[a-z0-9_][a-z0-9_.+-]{0,8}", fullmatch=True), min_size=1, max_size=4,
                     unique=True).map(sorted),
    "ciuser": st.from_regex(r"[a-z_][a-z0-9_-]{0,12}", fullmatch=True),
    "sshkeys": st.lists(st.sampled_from(KEYS), min_size=1, max_size=2, unique=True),
    "ipconfig0": _ipconfig(),
    **{f"ipconfig{i}": _maybe(_ipconfig()) for i in range(1, reg.MAX_NICS)},
    "nameserver": st.lists(st.sampled_from(["10.0.0.1", "1.1.1.1", "2620:fe::fe"]), min_size=1, max_size=3,
                           unique=True).map(" ".join),
    "searchdomain": st.lists(LABEL, min_size=1, max_size=3).map(".".join),
    "cicustom": st.just("user=local:snippets/phoenix-100-user.yaml"),
    "power": st.sampled_from(["running", "stopped"]),
    **{slot: st.one_of(st.none(), st.none(), st.none(), _disk(slot)) for slot in reg.DISK_SLOTS},
}
CONFIGURED = [name for name in reg.CONFIGURED]
values_of = st.fixed_dictionaries({name: STRATEGIES[name] for name in CONFIGURED})


def test_every_pve_attribute_has_a_strategy():
    shown_by_pve = {a.name for a in reg.ATTRIBUTES if a.source is reg.Source.PVE}
    assert shown_by_pve == set(STRATEGIES)


def test_registry_entries_are_consistent():
    for entry in reg.ATTRIBUTES:
        assert not (entry.reboot and entry.hotplug), entry.name
        if entry.writer is reg.Writer.CONFIGURE:
            assert entry.pve_keys and entry.read is not None, entry.name
        if entry.removable:
            assert entry.writer is reg.Writer.CONFIGURE, f"{entry.name}: only a config key can be removed"
        if entry.source is reg.Source.STATE:
            assert not entry.pve_keys and entry.writer is not reg.Writer.CONFIGURE, entry.name
    assert len(reg.BY_NAME) == len(reg.ATTRIBUTES)


def _make_vm(client) -> None:
    client.run_task("POST", f"/nodes/{NODE}/qemu", vmid=VMID, name="rt", scsi0="local-lvm:1",
                    ide2="local-lvm:cloudinit", net0="virtio,bridge=vmbr0")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=values_of, removed=st.sets(st.sampled_from(sorted(reg.REMOVABLE))))
def test_every_configured_attribute_round_trips_through_the_simulator(client, values, removed):
    """Write with the registry, read back with the registry: no diff; removed options are gone."""
    if client.get("/cluster/resources", type="vm") == []:
        _make_vm(client)
    config = client.get(f"{PATH}/config")
    old_disks = [k for k in config if k in reg.RESIZABLE or k.startswith("unused")]
    if old_disks:           # every example's disks are new ones (a disk's size only grows by resize)
        client.put(f"{PATH}/config", delete=",".join(old_disks))
        client.put(f"{PATH}/config", delete=",".join(k for k in client.get(f"{PATH}/config") if k.startswith("unused"))
                   or "unused0")
        config = client.get(f"{PATH}/config")
    client.put(f"{PATH}/config", digest=config["digest"], **reg.configure_params(values, config))
    actual = narrowed(actual_view(client.get(f"{PATH}/config"), None), values)
    assert compare({k: actual.get(k) for k in values}, values) == []
    if removed:
        client.put(f"{PATH}/config", **reg.configure_params(dict.fromkeys(removed), client.get(f"{PATH}/config")))
        actual = actual_view(client.get(f"{PATH}/config"), None)
        assert {k: actual.get(k) for k in removed} == dict.fromkeys(removed)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=STRATEGIES["disk_size_gb"], power=STRATEGIES["power"])
def test_resized_disk_and_power_read_back_as_written(client, size, power):
    """The attributes other steps write (resize grows the disk, start/stop) read back the same way."""
    if client.get("/cluster/resources", type="vm") == []:
        _make_vm(client)
    have = codecs.disk_size_bytes(client.get(f"{PATH}/config")) or 0
    if have < size * codecs.GIB:
        client.run_task("PUT", f"{PATH}/resize", disk="scsi0", size=f"{size}G")
    status = client.get(f"{PATH}/status/current")["status"]
    if status != power:
        client.run_task("POST", f"{PATH}/status/{'start' if power == 'running' else 'stop'}")
    actual = actual_view(client.get(f"{PATH}/config"), client.get(f"{PATH}/status/current")["status"])
    assert actual["power"] == power
    assert actual["disk_size_gb"] == max(size, have // codecs.GIB)


def test_flags_drive_the_plan_vocabulary():
    assert reg.REBOOT == {"cores", "memory_mb", "agent", "serial0", "vga", "cpu", "sockets", "balloon_mb", "machine",
                          "bios", "efidisk0", "scsihw"}
    assert {"onboot", "startup", "description", "net0", "scsi1"} <= set(named_hotplug := reg.named("hotplug"))
    assert reg.BY_NAME["scsi1"].needs_reboot({"size_gb": 1, "storage": "s"}, {"size_gb": 1, "storage": "s", "ssd": True})
    assert not reg.BY_NAME["scsi1"].needs_reboot(None, {"size_gb": 1, "storage": "s", "ssd": True})
    assert named_hotplug
    assert reg.CLOUDINIT == {"ciuser", "sshkeys", "nameserver", "searchdomain", "cicustom",
                             *(f"ipconfig{i}" for i in range(reg.MAX_NICS))}
    assert reg.STATE_TRACKED == ("template", "user_data")
    assert reg.render_value("user_data", "hmac-sha256:x") == "(sensitive)"
    assert reg.render_value("sshkeys", [KEYS[0]]).startswith('["ssh-ed25519 AAAAC3NzaC1l…')
    assert reg.configure_params({"tags": None, "sshkeys": None, "cores": 2}, {}) == {"cores": 2,
                                                                                     "delete": "tags,sshkeys"}


@given(st.lists(st.from_regex(r"[a-z0-9_][a-z0-9_.+-]{0,8}", fullmatch=True), max_size=5),
       st.sampled_from([";", ",", " ", "; "]))
def test_tags_parse_one_way_whatever_the_separator(tags, separator):
    assert propstr.parse_tags(separator.join(tags)) == tags
    assert propstr.parse_tags(propstr.format_tags(tags)) == tags


def test_a_declared_description_keeps_phoenixs_own_lines(client):
    """The user's text is compared and written; the ownership marker (and any phoenix- line) stays."""
    if client.get("/cluster/resources", type="vm") == []:
        _make_vm(client)
    marker = "phoenix-owner: 0f3c lineage vmid=100"
    client.put(f"{PATH}/config", description=f"old text\n{marker}")
    assert actual_view(client.get(f"{PATH}/config"), None)["description"] == "old text"
    for value in ("web server\nsecond line", None):
        config = client.get(f"{PATH}/config")
        client.put(f"{PATH}/config", **reg.configure_params({"description": value}, config))
        config = client.get(f"{PATH}/config")
        assert actual_view(config, None).get("description") == value
        assert marker in config["description"]
