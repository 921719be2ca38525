"""phoenix: a terraform-style reconciler for Proxmox VE VMs built from cloud-image templates."""
__version__ = "0.1.0"
