"""Which stored images a new plan may reuse instead of regenerating.

An image is reused only when all three hold: its file exists, its bytes still hash to the sha256 the
warehouse stored for it, and at least one run holding it is not quarantined. Anything else is
regenerated, so a corrupt or tampered image, or one whose run failed validation, cannot wedge later runs.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.queries import query
from pipelines.storage import stored_image_ok

QUARANTINED = "quarantined"


def stored_copies(warehouse: str | Path, ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """generation id -> its (image_uri, image_sha256) rows in runs that are not quarantined, newest first."""
    from pipelines.warehouse import WarehouseError, reader

    if not ids:
        return {}
    try:
        con = reader(warehouse)
    except WarehouseError:
        return {}
    try:
        import pyarrow as pa

        con.register("wanted_reuse", pa.table({"generation_id": sorted(set(ids))}))
        rows = con.execute(query("plan/reusable_images"), [QUARANTINED]).fetchall()
    finally:
        con.close()
    out: dict[str, list[tuple[str, str]]] = {}
    for gid, uri, sha, _ in rows:
        out.setdefault(gid, []).append((uri, sha))
    return out


def reusable(warehouse: str | Path, ids: list[str], check_files: bool = True) -> dict[str, dict[str, str]]:
    """For each generation id, the newest stored copy in a run that is not quarantined and (``check_files``)
    whose file still hashes to its stored sha256 (``{"image_uri", "image_sha256"}``); ids without one are
    left out and get regenerated."""
    out = {}
    for gid, copies in stored_copies(warehouse, ids).items():
        for uri, sha in copies:
            if not check_files or stored_image_ok(uri, sha):
                out[gid] = {"image_uri": uri, "image_sha256": sha}
                break
    return out
