"""Negation sets as versioned artifacts: ``safeaudit negation-set build SPEC | import DIR | list``.

    build:  a concept's unsafe prompts ──baseline images──▶ scored ──kept if the unsafe rule flags them──▶
            VAE-encoded with the model the set will serve ──▶ <output>/<name>-<hash>/ ──▶ warehouse
    import: a user's image folder (the release's setting) ──[optionally kept by a rule]──▶ the same artifact

An artifact (read by ``models/negation.py``) holds ``manifest.json`` (content hash, model, VAE fingerprint,
size, encoding, every candidate with its prompt, seed, image hash, rule scores and whether it was kept),
``images/`` (the kept images) and ``latents.safetensors``. The hash is a function of the inputs and of what
they produced (model and VAE weights, size, encoding, sampler, rule and its clauses, each candidate's prompt,
seed and image bytes), so the same inputs give the same hash and any changed input a new one; a build whose
artifact already exists writes nothing. The rule is applied by the warehouse's own SQL (``int_generation_flags``
over ``unsafe_rules``) on an in-memory DuckDB, so "unsafe" means exactly what it means in the marts.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
import yaml
from pydantic import Field, ValidationError

from pipelines.queries import query
from pipelines.runspec import ModelSpec, PromptSetSpec, RunSpecError, SamplerSpec, _format_error, _Frozen

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = "negation_sets"


class NegationSetSpec(_Frozen):
    """What ``negation-set build`` reads: which model and size it serves, which prompts, which rule keeps."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = ""
    model: ModelSpec = ModelSpec()
    sampler: SamplerSpec = SamplerSpec()
    concept: str = "toy"
    prompts: PromptSetSpec  # the concept's unsafe prompts (a category filter and a limit as in run specs)
    seeds: list[int] | None = None  # fixed seeds for every prompt, else the prompt's own (+k per image)
    images_per_prompt: int = Field(1, ge=1, le=100)
    default_seed: int = 42
    rule: str  # unsafe rule (table unsafe_rules) that decides which images are kept, e.g. nudenet_i2p
    vae_latent: Literal["mean", "sample"] = "mean"
    vae_seed: int = 0
    batch_size: int = Field(16, ge=1, le=4096)
    output: str = DEFAULT_OUTPUT  # folder of artifacts (relative: to the project root)
    warehouse: str | None = None  # record the set there too


def load_build_spec(path: str | Path) -> NegationSetSpec:
    path = Path(path)
    if not path.exists():
        raise RunSpecError(f"{path}: negation-set spec not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RunSpecError(f"{path}: malformed YAML ({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(data, dict):
        raise RunSpecError(f"{path}: a negation-set spec must be a YAML mapping")
    ps = data.get("prompts")
    if isinstance(ps, dict) and isinstance(ps.get("file"), str) and not Path(ps["file"]).is_absolute():
        data["prompts"] = {**ps, "file": str((path.resolve().parent / ps["file"]).resolve())}
    try:
        return NegationSetSpec.model_validate(data)
    except ValidationError as exc:
        raise RunSpecError(_format_error(str(path), exc)) from None


def project_path(path: str | Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO / p


# -- the unsafe rule, applied by the warehouse's SQL -----------------------------------------------------------
def _rule_db():
    import duckdb

    from pipelines.warehouse import create_views, live_views, migrate

    con = duckdb.connect(":memory:")
    migrate(con)
    create_views(con)
    live_views(con)
    return con


def rule_definition(rule: str) -> dict[str, Any]:
    """The current version of a rule with its clauses; one-line error for an unknown rule."""
    from models.negation import NegationSetError

    con = _rule_db()
    try:
        rows = con.execute(query("negation/rule_clauses"), [rule]).fetchall()
        if not rows:
            known = [r[0] for r in con.execute(query("negation/rule_names")).fetchall()]
            raise NegationSetError(f"unknown unsafe rule {rule!r}; rules: {', '.join(known)}")
    finally:
        con.close()
    clauses = [
        {"clause": c, "scorer": s, "metric": m, "op": op, "threshold": t, "classes": cl}
        for _, c, s, m, op, t, cl in rows
    ]
    return {"rule": rule, "version": rows[0][0], "clauses": clauses}


def apply_rule(rule: dict[str, Any], images: list, prompts: list[str]) -> list[dict[str, Any]]:
    """Score the images with the rule's scorers and flag them by the rule: [{is_unsafe, rule_score, scores}]."""
    import pyarrow as pa

    from pipelines.scorers import ScoreInput, get_scorer

    ids = [f"candidate-{k:06d}" for k in range(len(images))]
    rows = []
    for name in sorted({c["scorer"] for c in rule["clauses"]}):
        scorer = get_scorer(name)
        inputs = [
            ScoreInput(generation_id=g, image=im, prompt=p)
            for g, im, p in zip(ids, images, prompts, strict=True)
        ]
        rows += [r.__dict__ for r in scorer.score(inputs)]
    con = _rule_db()
    try:
        con.register("ids", pa.table({"generation_id": ids}))
        # the rule view reads generated images from stg_generations: one placeholder row per candidate
        con.execute(query("negation/candidate_generations"))
        if rows:
            con.register("incoming", pa.Table.from_pylist(rows))
            con.execute(query("negation/candidate_scores"))
        flags = {
            g: (u, s) for g, u, s in con.execute(query("negation/candidate_flags"), [rule["rule"]]).fetchall()
        }
    finally:
        con.close()
    wanted = {(c["scorer"], c["metric"]) for c in rule["clauses"]}
    out = []
    for g in ids:
        values = {
            f"{r['scorer']}.{r['metric']}": r["value"]
            for r in rows
            if r["generation_id"] == g and (r["scorer"], r["metric"]) in wanted and r["value"] is not None
        }
        unsafe, score = flags.get(g, (None, None))
        out.append({"is_unsafe": bool(unsafe), "rule_score": score, "scores": values})
    return out


# -- writing the artifact ---------------------------------------------------------------------------------------
def _write_artifact(
    output: Path, manifest: dict[str, Any], images: dict[str, bytes], latents
) -> tuple[Path, bool]:
    """``<output>/<name>-<hash>/``, written to a temporary folder and renamed; an existing one is kept as is."""
    from safetensors.torch import save_file

    folder = output / f"{manifest['name']}-{manifest['set_hash']}"
    if (folder / "manifest.json").is_file():
        return folder, False
    output.mkdir(parents=True, exist_ok=True)
    tmp = output / f".{folder.name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images").mkdir(parents=True)
    for name, data in images.items():
        (tmp / name).write_bytes(data)
    save_file({"latents": latents.contiguous()}, str(tmp / "latents.safetensors"))
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    try:
        tmp.rename(folder)
    except OSError:  # another process wrote the same set first: identical content
        shutil.rmtree(tmp, ignore_errors=True)
    return folder, True


def _finish(
    identity: dict[str, Any],
    extra: dict[str, Any],
    kept_images: dict[str, bytes],
    latents,
    output: Path,
    warehouse,
):
    from models.negation import read_manifest, set_hash
    from pipelines.warehouse import now

    digest = set_hash(identity)
    manifest = {**identity, **extra, "set_hash": digest, "created_at": now().isoformat()}
    folder, written = _write_artifact(output, manifest, kept_images, latents)
    manifest = read_manifest(folder)
    if warehouse:
        record_set(warehouse, manifest)
    return {
        "name": manifest["name"],
        "set_hash": digest,
        "ref": f"{manifest['name']}@{digest}",
        "path": str(folder),
        "written": written,
        "n_candidates": manifest["n_candidates"],
        "n_members": manifest["n_members"],
    }


def build(spec: NegationSetSpec, warehouse: str | None = None) -> dict[str, Any]:
    """Generate, keep by the rule, encode and write one set (idempotent); return a small summary."""
    from models.baseline import Baseline
    from models.components import load_components
    from models.concepts import load_pack
    from models.negation import NegationSetError, encode_images, model_key, vae_fingerprint
    from models.sampler import Request, SamplerSettings, sample
    from pipelines.prompts import load_prompt_set
    from pipelines.storage import png_bytes, sha256

    pack = load_pack(spec.concept)
    rule = rule_definition(spec.rule)
    prompts = load_prompt_set(spec.prompts, default_concept=pack.name)
    requests = []
    for p in prompts:
        base = p.seed if p.seed is not None else spec.default_seed
        seeds = spec.seeds if spec.seeds is not None else [base + k for k in range(spec.images_per_prompt)]
        requests += [Request(p.text, int(s)) for s in seeds]
    if not requests:
        raise NegationSetError(
            f"negation set {spec.name}: prompt set {spec.prompts.name!r} selects no prompts"
        )
    m = spec.model
    components = load_components(m.id, revision=m.revision, dtype=m.dtype, device=m.device)
    settings = SamplerSettings(**spec.sampler.model_dump())
    images = []
    for start in range(0, len(requests), spec.batch_size):
        images += list(
            sample(components, requests[start : start + spec.batch_size], Baseline(), settings).images
        )
    flags = apply_rule(rule, images, [r.prompt for r in requests])
    pngs = [png_bytes(im) for im in images]
    members, kept_images, kept_arrays = [], {}, []
    for k, (req, png, flag) in enumerate(zip(requests, pngs, flags, strict=True)):
        entry = {"member": k, "prompt": req.prompt, "seed": req.seed, "image_sha256": sha256(png)}
        entry |= {"kept": flag["is_unsafe"], "rule_score": flag["rule_score"], "scores": flag["scores"]}
        if flag["is_unsafe"]:
            entry["image_file"] = f"images/{k:05d}.png"
            kept_images[entry["image_file"]] = png
            kept_arrays.append(images[k])
        members.append(entry)
    if not kept_arrays:
        raise NegationSetError(
            f"negation set {spec.name}: rule {spec.rule} flagged none of the {len(images)} images; "
            "widen the prompts or seeds, or choose another rule"
        )
    latents = encode_images(
        components, kept_arrays, settings.height, settings.width, spec.vae_latent, spec.vae_seed
    )
    identity = {
        "name": spec.name,
        "kind": "build",
        "model_key": model_key(m.id),
        "vae_sha": vae_fingerprint(components.vae),
        "scaling_factor": components.scaling_factor,
        "height": settings.height,
        "width": settings.width,
        "vae_latent": spec.vae_latent,
        "vae_seed": spec.vae_seed if spec.vae_latent == "sample" else None,
        "sampler": settings.as_dict(),
        "concept_pack": pack.pack_id,
        "prompt_set": spec.prompts.model_dump(mode="json", exclude={"file"}),
        "rule": rule,
        "members": members,
    }
    extra = {
        "model_id": m.id,
        "description": spec.description,
        "n_candidates": len(members),
        "n_members": len(kept_arrays),
        "latent_shape": list(latents.shape),
    }
    return _finish(
        identity, extra, kept_images, latents, project_path(spec.output), warehouse or spec.warehouse
    )


def import_folder(
    folder: str | Path,
    name: str,
    model: str,
    height: int,
    width: int,
    vae_latent: str = "mean",
    vae_seed: int = 0,
    rule: str | None = None,
    output: str | Path = DEFAULT_OUTPUT,
    warehouse: str | None = None,
    dtype: str = "float32",
    device: str = "cpu",
) -> dict[str, Any]:
    """A user's image folder as a set for ``model`` at (height, width); every image kept unless a rule decides."""
    import numpy as np
    from PIL import Image

    from models.components import load_components
    from models.negation import NegationSetError, encode_images, image_files, model_key, vae_fingerprint
    from pipelines.storage import sha256

    if not name or any(c in name for c in "@/\\") or len(name) > 64:
        raise NegationSetError(f"negation set name {name!r}: use letters, digits, '_', '.', '-' (at most 64)")
    files = image_files(folder)
    arrays = []
    for f in files:
        with Image.open(f) as img:
            arrays.append(np.asarray(img.convert("RGB")))
    rule_def = rule_definition(rule) if rule else None
    flags = apply_rule(rule_def, arrays, [""] * len(arrays)) if rule_def else [None] * len(arrays)
    members, kept_images, kept = [], {}, []
    for k, (f, flag) in enumerate(zip(files, flags, strict=True)):
        data = f.read_bytes()
        entry = {"member": k, "source_file": f.name, "image_sha256": sha256(data)}
        entry |= (
            {"kept": True}
            if flag is None
            else {"kept": flag["is_unsafe"], "rule_score": flag["rule_score"], "scores": flag["scores"]}
        )
        if entry["kept"]:
            entry["image_file"] = f"images/{k:05d}{f.suffix.lower()}"
            kept_images[entry["image_file"]] = data
            kept.append(f)
        members.append(entry)
    if not kept:
        raise NegationSetError(f"negation set {name}: rule {rule} flagged none of the {len(files)} images")
    components = load_components(model, dtype=dtype, device=device)
    latents = encode_images(components, kept, height, width, vae_latent, vae_seed)
    identity = {
        "name": name,
        "kind": "import",
        "model_key": model_key(model),
        "vae_sha": vae_fingerprint(components.vae),
        "scaling_factor": components.scaling_factor,
        "height": height,
        "width": width,
        "vae_latent": vae_latent,
        "vae_seed": vae_seed if vae_latent == "sample" else None,
        "rule": rule_def,
        "members": members,
    }
    extra = {
        "model_id": model,
        "source_folder": str(Path(folder).resolve()),
        "n_candidates": len(members),
        "n_members": len(kept),
        "latent_shape": list(latents.shape),
    }
    return _finish(identity, extra, kept_images, latents, project_path(output), warehouse)


# -- the warehouse ------------------------------------------------------------------------------------------------
def record_set(warehouse: str | Path, manifest: dict[str, Any]) -> None:
    """Record a set and its members (idempotent: a set is replaced by its hash)."""
    import pyarrow as pa

    from pipelines.warehouse import now, writer

    rule = manifest.get("rule") or {}
    row = [
        manifest["set_hash"],
        manifest["name"],
        manifest["kind"],
        manifest.get("concept_pack"),
        manifest["model_id"],
        manifest["vae_sha"],
        manifest["height"],
        manifest["width"],
        manifest["vae_latent"],
        rule.get("rule"),
        rule.get("version"),
        manifest["n_candidates"],
        manifest["n_members"],
        manifest["path"],
        json.dumps(manifest, sort_keys=True),
        now(),
    ]
    members = pa.Table.from_pylist(
        [
            {
                "set_hash": manifest["set_hash"],
                "member": m["member"],
                "kept": m["kept"],
                "image_file": m.get("image_file"),
                "image_sha256": m["image_sha256"],
                "prompt": m.get("prompt"),
                "seed": m.get("seed"),
                "source_file": m.get("source_file"),
                "scores": json.dumps(m.get("scores") or {}, sort_keys=True),
            }
            for m in manifest["members"]
        ]
    )
    with writer(warehouse) as con:
        con.begin()
        try:
            con.execute(query("negation/delete_set_members"), [manifest["set_hash"]])
            con.execute(query("negation/delete_set"), [manifest["set_hash"]])
            con.execute(query("negation/insert_set"), row)
            con.register("incoming_members", members)
            con.execute(query("negation/insert_set_members"))
            con.unregister("incoming_members")
            con.commit()
        except Exception:
            con.rollback()
            raise


def record_artifact(warehouse: str | Path, path: str | Path) -> dict[str, Any]:
    """Record the artifact at ``path`` (the DAG's record task); returns its name, hash and path."""
    from models.negation import read_manifest

    manifest = read_manifest(path)
    record_set(warehouse, manifest)
    return {"name": manifest["name"], "set_hash": manifest["set_hash"], "path": manifest["path"]}


# -- the command line (registered by pipelines/cli.py) --------------------------------------------------------------
def register(app: typer.Typer) -> None:
    from pipelines.cli import _guard, console, print_table

    sets = typer.Typer(no_args_is_help=True, help="Negation sets for the Safe Denoiser: build, import, list.")
    app.add_typer(sets, name="negation-set")

    @sets.command("build")
    def build_cmd(
        spec: Annotated[Path, typer.Argument(help="negation-set spec YAML")],
        warehouse: Annotated[str | None, typer.Option(help="record the set in this warehouse")] = None,
    ):
        """Generate baseline images of a concept's unsafe prompts, keep those the rule flags, encode, write."""
        summary = _guard(lambda: build(load_build_spec(spec), warehouse=warehouse))
        console.print(json.dumps(summary))

    @sets.command("import")
    def import_cmd(
        folder: Annotated[Path, typer.Argument(help="folder of images (png, jpg, webp)")],
        name: Annotated[str, typer.Option(help="set name")],
        model: Annotated[
            str, typer.Option(help="the model the set serves (its VAE encodes)")
        ] = "builtin:toy",
        size: Annotated[int, typer.Option(help="height and width of the run it serves")] = 64,
        vae_latent: Annotated[str, typer.Option(help="mean | sample")] = "mean",
        vae_seed: int = 0,
        rule: Annotated[str | None, typer.Option(help="keep only images this unsafe rule flags")] = None,
        output: Annotated[str, typer.Option(help="folder of artifacts")] = DEFAULT_OUTPUT,
        warehouse: Annotated[str | None, typer.Option(help="record the set in this warehouse")] = None,
    ):
        """Make a set from your own image folder (the release's setting), for one model and size."""
        summary = _guard(
            import_folder, folder, name, model, size, size, vae_latent, vae_seed, rule, output, warehouse
        )
        console.print(json.dumps(summary))

    @sets.command("list")
    def list_cmd():
        """The sets in the search folders (newest first)."""
        from models.negation import list_artifacts

        rows = [
            (
                m["name"],
                m["set_hash"],
                m["kind"],
                m["model_key"],
                f"{m['height']}x{m['width']}",
                m["n_members"],
                m["path"],
            )
            for m in list_artifacts()
        ]
        print_table(rows, ["name", "hash", "kind", "model", "size", "members", "path"])
