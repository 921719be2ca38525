"""``phoenix template provision [VMID]``: build the declared template(s), idempotently."""

from __future__ import annotations

from pathlib import Path

from phoenix.commands.context import Context
from phoenix.errors import PhoenixError
from phoenix.template.report import as_reporter


def provision_command(ctx: Context, vmid: int | None = None, *, cache_dir: Path | None = None,
                      on_pve_host: bool = False, image_storage: str | None = None, reporter: object = None) -> int:
    """Provision template ``vmid`` (every declared template when None); 0 on success.

    Existing templates are reported and left alone.  The templates carry the ownership marker of
    the state (its lineage is written first if the state is new).  The environment decides what cannot happen
    here (its offline stand-ins, announced as ``simulated: ...``) and where storage lives.
    """
    from phoenix.desired import load_desired
    from phoenix.template.provision import default_cache_dir, ensure_template

    cfg = load_desired(ctx.config)
    templates = list(cfg.templates)
    if vmid is not None:
        templates = [t for t in templates if t.vmid == vmid]
        if not templates:
            declared = ", ".join(str(t.vmid) for t in cfg.templates) or "none"
            raise PhoenixError(f"{ctx.config}: no template with vmid {vmid} is declared (declared: {declared})")
    if not templates:
        raise PhoenixError(f"{ctx.config}: declares no templates")
    report = as_reporter(reporter)
    store = ctx.store()
    with ctx.environment.connect() as conn, store.lock("template provision"):
        state = store.read()
        if state.serial == 0:
            store.write(state)      # the template's ownership marker names this lineage: keep it
        for spec in templates:
            ensure_template(conn.client, spec, owner=state.lineage, cache_dir=cache_dir or default_cache_dir(),
                            reporter=report, stand_ins=conn.stand_ins, on_pve_host=on_pve_host,
                            image_storage=image_storage, storage_roots=conn.storage_roots)
    return 0
