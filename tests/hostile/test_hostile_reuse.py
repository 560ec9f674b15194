"""Reuse trusts nothing it cannot check: a corrupt stored image, or one from a quarantined run, is
regenerated, never reused (issue 15 item 4).

On c1bbf7d the planner reused any image whose file existed: one corrupt PNG made every later run crash
with ``UnidentifiedImageError`` (a traceback naming no file), even after validation quarantined its run.
"""

from __future__ import annotations

import duckdb
import pytest

from tests.hostile.kit15b import cli, tiny_spec

pytestmark = pytest.mark.slow


def _rows(warehouse, tag):
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return sorted(
            con.execute(
                "SELECT g.generation_id, g.reused, g.image_uri FROM generations g JOIN runs r USING (run_id) "
                "WHERE r.tag IS NOT DISTINCT FROM ? ORDER BY 1",
                [tag],
            ).fetchall()
        )
    finally:
        con.close()


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reuse")
    spec = tiny_spec(tmp)
    r = cli("run", str(spec), "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp, spec


def test_corrupt_stored_image_is_regenerated_not_reused(first_run):
    tmp, spec = first_run
    first = _rows(tmp / "wh.duckdb", None)
    assert len(first) == 2 and not any(reused for _, reused, _ in first)
    corrupt_gid, _, corrupt_uri = first[0]
    with open(corrupt_uri, "r+b") as fh:  # flip bytes in the middle of the PNG: same size, bad content
        fh.seek(40)
        fh.write(b"\x00garbage\x00" * 4)

    r = cli("run", str(spec), "--quiet", "--tag", "night-2")
    assert r.returncode == 0, r.stderr[-3000:]
    second = {gid: (reused, uri) for gid, reused, uri in _rows(tmp / "wh.duckdb", "night-2")}
    assert second[corrupt_gid][0] is False and second[corrupt_gid][1] != corrupt_uri  # regenerated
    other = first[1][0]
    assert second[other] == (True, first[1][2])  # the intact one is still reused


def test_images_of_a_quarantined_run_are_not_reused(first_run):
    from pipelines.warehouse import writer

    tmp, spec = first_run
    with writer(tmp / "wh.duckdb") as con:
        con.execute("UPDATE runs SET status = 'quarantined'")  # every run so far failed validation
    r = cli("run", str(spec), "--quiet", "--tag", "night-3")
    assert r.returncode == 0, r.stderr[-3000:]
    third = _rows(tmp / "wh.duckdb", "night-3")
    assert len(third) == 2 and not any(reused for _, reused, _ in third)


def test_image_changed_between_plan_and_generate_names_the_file(first_run):
    """The Airflow path plans first and generates later: a file changed in between is refused by name."""
    from pipelines.errors import ArtifactError
    from pipelines.generate import generate_batch
    from pipelines.plan import plan_run
    from pipelines.runspec import load_spec

    tmp, _ = first_run
    plan = plan_run(load_spec(tiny_spec(tmp, name="tagged.yaml", tag="night-4")))
    assert plan.n_reused == 2
    victim = next(iter(plan.images.values()))
    with open(victim, "wb") as fh:
        fh.write(b"not a png at all")
    with pytest.raises(ArtifactError) as exc:
        for batch_id in plan.batch_ids:
            generate_batch(str(tmp / "artifacts"), plan.run_id, batch_id)
    text = str(exc.value)
    assert victim in text and "sha256 mismatch" in text and "\n" not in text
