"""Check a network-config file with cloud-init's own parser (run under cloud-init's interpreter).

cloud-init 22.x has no network-config schema command; its network_state parser is what reads the
file at boot, so strict parsing plus rendering netplan is the real check.  Exit 0 = valid.
"""

import sys

import yaml
from cloudinit.net import network_state
from cloudinit.net.netplan import Renderer

with open(sys.argv[1], encoding="utf-8") as handle:
    config = yaml.safe_load(handle)
if not isinstance(config, dict) or config.get("version") != 2 or not isinstance(config.get("ethernets"), dict):
    sys.exit("not a version 2 network config with ethernets")
state = network_state.parse_net_config_data(config, skip_broken=False)
interfaces = list(state.iter_interfaces())
if len(interfaces) != len(config["ethernets"]):
    sys.exit(f"cloud-init parsed {len(interfaces)} interfaces, file has {len(config['ethernets'])}")
Renderer({"netplan_path": "/dev/null", "postcmds": False})._render_content(state)
print("valid network-config")
