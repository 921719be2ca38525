"""The simulated PVE cluster's state and semantics (what ``Request.sim.model`` is).

``Cluster`` holds nodes, storages, VM configs and volumes; the other modules implement PVE's
rules on top of it (config/pending, disks, cloud-init, guest agent) so handlers stay thin.
"""

from phoenix.sim.model.cluster import Cluster

__all__ = ["Cluster"]
