"""``phoenix template provision [VMID]``: build the declared template(s), idempotently.

Wiring for cli.py (the lead's)::

    provision_command(config_path, vmid, *, state_path=DEFAULT_STATE, sim=False, cache_dir=None,
                      on_pve_host=False, image_storage=None, client=None) -> int
"""

from __future__ import annotations

from pathlib import Path

from phoenix.errors import PhoenixError

__all__ = ["provision_command"]


def provision_command(config_path: Path, vmid: int | None = None, *, state_path: Path = Path("state/phoenix.state.json"),
                      sim: bool = False, cache_dir: Path | None = None, on_pve_host: bool = False,
                      image_storage: str | None = None, client=None, reporter=None) -> int:
    """Provision template ``vmid`` (every declared template when None); 0 on success.

    Existing templates are reported and left alone.  The templates carry the ownership marker of
    the state at ``state_path`` (its lineage is written first if the state is new).  ``sim`` connects to the embedded simulator
    and allows the visible ``simulated: ...`` stand-ins; ``client`` (tests, embedding) skips connecting.
    """
    from phoenix.desired import load_desired
    from phoenix.template.provision import default_cache_dir, ensure_template, talks_to_simulator
    from phoenix.template.report import as_reporter

    cfg = load_desired(config_path)
    templates = list(cfg.templates)
    if vmid is not None:
        templates = [t for t in templates if t.vmid == vmid]
        if not templates:
            declared = ", ".join(str(t.vmid) for t in cfg.templates) or "none"
            raise PhoenixError(f"{config_path}: no template with vmid {vmid} is declared (declared: {declared})")
    if not templates:
        raise PhoenixError(f"{config_path}: declares no templates")
    report = as_reporter(reporter)
    from phoenix.state.store import StateStore

    store = StateStore(state_path)

    def run(active_client, simulated: bool, storage_roots=None) -> int:
        simulated = simulated or talks_to_simulator(active_client)
        with store.lock("template provision"):
            state = store.read()
            if state.serial == 0:
                store.write(state)      # the template's ownership marker names this lineage: keep it
            for spec in templates:
                ensure_template(active_client, spec, owner=state.lineage, cache_dir=cache_dir or default_cache_dir(),
                                reporter=report, simulated=simulated, on_pve_host=on_pve_host,
                                image_storage=image_storage, storage_roots=storage_roots)
        return 0

    if client is not None:
        return run(client, sim)
    from phoenix.workflow import GlobalOptions, connect

    with connect(GlobalOptions(config=Path(config_path), state=Path(state_path), sim=sim)) as connection:
        return run(connection.client, sim or connection.simulated, connection.storage_roots)
