"""Hostile inputs at the front door: bad specs, prompt files and artifacts (issue 15, items 7, 8, 11).

Every case is the real ``safeaudit`` command (typer's CliRunner, in process: ~0.1 s a case instead of ~5 s
for a fresh interpreter; ``test_cases_in_a_real_subprocess`` repeats a sample through ``python -m
pipelines.cli``) and must end one of two ways:

* exit 2 with exactly one line on stderr, ``error: ...``, naming the file, row or key; for a spec error
  no plan folder is written; and the warehouse's table hashes are unchanged;
* or a clean accept (exit 0).

On c1bbf7d every case failed (29 run there with this file: tracebacks such as a seed >= 2^63 or a prompt
file that is a folder, silent accepts such as ``seeds: []``, ``steps: true``, duplicate keys, a header-only
CSV or ``--format xml``, messages without the file such as ``'<Buffer>'``, and ``expansion_over_the_cap``,
not run to the end there: it planned 4 M items and passed 3 GB of memory).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.hostile.kit15b import cli, one_line_error, table_hashes
from tests.sql.fixtures import build_fixture_warehouse

BASE: dict[str, Any] = {
    "name": "hostile",
    "model": {"id": "builtin:tiny"},
    "sampler": {"scheduler": "ddim", "steps": 2},
    "prompt_sets": [{"name": "core", "builtin": "benign_core", "limit": 2}],
    "methods": [{"name": "baseline"}],
    "scorers": [],
    "batch_size": 2,
}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    """The SQL fixture warehouse (two runs, known rows): every spec below points its output at it."""
    return build_fixture_warehouse(tmp_path_factory.mktemp("hostile-wh") / "wh.duckdb").path


class Case:
    """A hostile input: ``build(tmp, warehouse) -> argv`` and the strings its one error line must hold."""

    def __init__(self, name: str, build: Callable[[Path, Path], list[str]], *expect: str, spec_error=True):
        self.name, self.build, self.expect, self.spec_error = name, build, expect, spec_error

    def __repr__(self) -> str:
        return self.name


def _spec(tmp: Path, wh: Path, text: str | None = None, **changes: Any) -> Path:
    data = json.loads(json.dumps(BASE))
    data["output"] = {"artifacts": str(tmp / "artifacts"), "warehouse": str(wh)}
    for key, value in changes.items():
        if value is _DROP:
            data.pop(key, None)
        else:
            data[key] = value
    path = tmp / "spec.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(data, sort_keys=False))
    return path


_DROP = object()


def run_with(**changes: Any) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, wh: ["run", str(_spec(tmp, wh, **changes)), "--quiet"]


def run_text(text: str) -> Callable[[Path, Path], list[str]]:
    def build(tmp: Path, wh: Path) -> list[str]:
        out = yaml.safe_dump({"output": {"artifacts": str(tmp / "artifacts"), "warehouse": str(wh)}})
        return ["run", str(_spec(tmp, wh, text=text + "\n" + out)), "--quiet"]

    return build


def csv_set(content: bytes | str, name: str = "p.csv", **ps: Any) -> Callable[[Path, Path], list[str]]:
    def build(tmp: Path, wh: Path) -> list[str]:
        path = tmp / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        prompt_set = {"name": "csv", "file": str(path), **ps}
        return ["run", str(_spec(tmp, wh, prompt_sets=[prompt_set])), "--quiet"]

    return build


def prompt_file_at(target: str) -> Callable[[Path, Path], list[str]]:
    def build(tmp: Path, wh: Path) -> list[str]:
        path = tmp / "dir.csv" if target == "dir" else Path(target)
        if target == "dir":
            path.mkdir()
        ps = [{"name": "csv", "file": str(path), "format": "sixcd_benign"}]
        return ["run", str(_spec(tmp, wh, prompt_sets=ps)), "--quiet"]

    return build


def spec_path_is_directory(tmp: Path, wh: Path) -> list[str]:
    (tmp / "a-folder.yaml").mkdir()
    return ["run", str(tmp / "a-folder.yaml"), "--quiet"]


def spec_not_utf8(tmp: Path, wh: Path) -> list[str]:
    path = tmp / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    return ["run", str(path), "--quiet"]


def spec_too_large(tmp: Path, wh: Path) -> list[str]:
    path = _spec(tmp, wh)
    path.write_text(path.read_text() + "#" * (1 << 20) + "\n")
    return ["run", str(path), "--quiet"]


# nested aliases under a free-form override (dict[str, Any]): 9^5 leaves from a few hundred bytes; on
# c1bbf7d the deeper 760-byte variant used 3.4 GB before MemoryError
ALIAS_BOMB = "\n".join(
    [
        "name: bomb",
        "prompt_sets: [{name: a, builtin: benign_core}]",
        'a: &a ["x","x","x","x","x","x","x","x","x"]',
    ]
    + [
        f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]"
        for p, c in zip("abcd", "bcde", strict=True)
    ]
    + ["methods: [{name: baseline}, {name: dual_latent, overrides: {safe_embedding: {x: *e}}}]"]
)
DEEP = "name: deep\nmethods: [{name: baseline}]\nprompt_sets: [{name: a, builtin: benign_core}]\n" + (
    "description: " + "[" * 40 + "]" * 40
)
SIXCD = "case_number,prompt,evaluation_seed\n"


def artifacts_under_a_file(tmp: Path, wh: Path) -> list[str]:
    (tmp / "not-a-folder").write_text("a file")
    spec = _spec(tmp, wh)
    data = yaml.safe_load(spec.read_text())
    data["output"]["artifacts"] = str(tmp / "not-a-folder" / "artifacts")
    spec.write_text(yaml.safe_dump(data))
    return ["run", str(spec), "--quiet"]


def planned(tmp: Path, wh: Path) -> tuple[str, Path, str]:
    """`safeaudit plan` on the base spec; returns (run id, its artifacts folder, its first batch id)."""
    res = CliRunner().invoke(_app(), ["plan", str(_spec(tmp, wh))])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout.strip().splitlines()[-1])
    run_dir = tmp / "artifacts" / plan["run_id"]
    batch_id = json.loads((run_dir / "plan.json").read_text())["batch_ids"][0]
    return plan["run_id"], tmp / "artifacts", batch_id


def load_case(mutate: Callable[[Path, str], None]) -> Callable[[Path, Path], list[str]]:
    def build(tmp: Path, wh: Path) -> list[str]:
        run_id, artifacts, batch_id = planned(tmp, wh)
        batch_dir = artifacts / run_id / batch_id
        batch_dir.mkdir(parents=True, exist_ok=True)
        mutate(batch_dir, run_id)
        return ["load", run_id, "--artifacts", str(artifacts), "--warehouse", str(tmp / "own.duckdb")]

    return build


def _manifest(batch_dir: Path, run_id: str, **drop: Any) -> None:
    m = {
        "run_id": run_id,
        "batch_id": batch_dir.name,
        "method": "baseline",
        "level": "off",
        "n_items": 2,
        "n_generated": 2,
        "n_reused": 0,
        "wall_s": 1.0,
        "worker": "w",
        "finished_at": "2026-12-04T00:00:00",
    }
    (batch_dir / "manifest.json").write_text(json.dumps({k: v for k, v in m.items() if k not in drop}))


def _corrupt_parquet(batch_dir: Path, run_id: str) -> None:
    _manifest(batch_dir, run_id)
    (batch_dir / "generations.parquet").write_bytes(b"PAR1 this is not parquet PAR1")


def _bad_json(batch_dir: Path, run_id: str) -> None:
    (batch_dir / "manifest.json").write_text('{"run_id": "x", ')


def _no_keys(batch_dir: Path, run_id: str) -> None:
    _manifest(batch_dir, run_id, n_items=1, finished_at=1)


CASES = [
    # -- item 7: tracebacks on c1bbf7d ----------------------------------------------------------------
    Case(
        "override_wrong_type",
        run_with(methods=[{"name": "baseline"}, {"name": "sld", "overrides": {"sld_threshold": "abc"}}]),
        "spec.yaml: methods[1].overrides.sld_threshold: expected float",
    ),
    Case(
        "knob_inf",
        run_text(
            "name: h\nprompt_sets: [{name: a, builtin: benign_core}]\nmethods: [{name: baseline}, {name: sld, knob: [.inf]}]"
        ),
        "methods[1].knob[0]",
        "finite",
    ),
    Case("seed_2_63", run_with(seeds=[2**63]), "spec.yaml: seeds[0]"),
    Case("default_seed_2_63", run_with(default_seed=2**63), "default_seed"),
    Case("csv_seed_2_63", csv_set(SIXCD + f"0,a cat,{2**63}\n", format="sixcd_benign"), "p.csv:2", "seed"),
    Case("prompt_file_is_a_directory", prompt_file_at("dir"), "dir.csv", "cannot read prompt file"),
    Case("prompt_file_unreadable", prompt_file_at("/proc/self/mem"), "/proc/self/mem", "cannot read"),
    Case("spec_path_is_a_directory", spec_path_is_directory, "a-folder.yaml", "cannot read run spec"),
    Case("spec_not_utf8", spec_not_utf8, "latin1.yaml", "not UTF-8"),
    Case(
        "artifacts_folder_unwritable",
        artifacts_under_a_file,
        "not-a-folder",
        "cannot write",
        spec_error=False,
    ),
    Case(
        "load_unknown_run",
        lambda tmp, wh: ["load", "no-such-run", "--artifacts", str(tmp)],
        "no-such-run/plan.json",
        "not found",
        spec_error=False,
    ),
    Case(
        "manifest_without_parquet",
        load_case(lambda d, r: _manifest(d, r)),
        "generations.parquet",
        "not found",
        spec_error=False,
    ),
    Case(
        "manifest_without_keys",
        load_case(_no_keys),
        "manifest.json",
        "n_items",
        "finished_at",
        spec_error=False,
    ),
    Case(
        "corrupt_parquet",
        load_case(_corrupt_parquet),
        "generations.parquet",
        "unreadable parquet",
        spec_error=False,
    ),
    Case(
        "malformed_manifest_json", load_case(_bad_json), "manifest.json", "malformed JSON", spec_error=False
    ),
    # -- item 8: unbounded expansion ------------------------------------------------------------------
    Case("yaml_alias_bomb", run_text(ALIAS_BOMB), "spec.yaml: line 4", "alias *a refused"),
    Case("yaml_deep_nesting", run_text(DEEP), "nested deeper"),
    Case("spec_file_too_large", spec_too_large, "spec.yaml", "larger than"),
    Case(
        "override_unknown_key",
        run_with(methods=[{"name": "baseline"}, {"name": "sld", "overrides": {"nope": {"a": [1]}}}]),
        "methods[1].overrides.nope",
        "no config key",
    ),
    Case(
        "expansion_over_the_cap",
        run_with(
            seeds=list(range(10_000)),
            methods=[{"name": "baseline"}, {"name": "sld", "knob": [i / 100 for i in range(200)]}],
        ),
        "over the cap",
    ),
    # -- item 11: silent accepts on c1bbf7d -----------------------------------------------------------
    Case("empty_seeds", run_with(seeds=[]), "spec.yaml: seeds"),
    Case("empty_prompt_sets", run_with(prompt_sets=[]), "spec.yaml: prompt_sets"),
    Case(
        "empty_levels", run_with(methods=[{"name": "baseline", "levels": []}]), "methods[0].levels", "empty"
    ),
    Case("header_only_csv", csv_set(SIXCD, format="sixcd_benign"), "prompt_sets[0] 'csv'", "no prompts"),
    Case("steps_true", run_with(sampler={"steps": True}), "sampler.steps", "integer"),
    Case(
        "duplicate_key",
        run_text(
            "name: a\nname: b\nprompt_sets: [{name: a, builtin: benign_core}]\nmethods: [{name: baseline}]"
        ),
        "line 2",
        "duplicate key 'name'",
    ),
    Case("height_not_multiple_of_8", run_with(sampler={"height": 12}), "sampler.height", "multiple of 8"),
    Case(
        "sql_format_xml",
        lambda tmp, wh: ["sql", "SELECT 1", "--warehouse", str(wh), "--format", "xml"],
        "--format",
        "table, csv, json",
        spec_error=False,
    ),
]


def _app():
    from pipelines.cli import app

    return app


def _device_case() -> list[Case]:
    import torch

    if torch.cuda.is_available():
        return []
    return [
        Case(
            "device_cuda_without_cuda",
            run_with(model={"id": "builtin:tiny", "device": "cuda"}),
            "model.device",
            "CUDA is not available",
        )
    ]


@pytest.mark.parametrize("case", CASES + _device_case(), ids=repr)
def test_hostile_input_is_one_line_exit_2(case: Case, tmp_path, warehouse):
    before = table_hashes(warehouse)
    argv = case.build(tmp_path, warehouse)
    result = CliRunner().invoke(_app(), argv)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.exit_code == 2, (result.exit_code, result.output[-2000:], result.exception)
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for e in case.expect:
        assert e in lines[0], (e, lines[0])
    assert "<Buffer>" not in lines[0]
    if case.spec_error:  # refused at validation: nothing written
        assert not (tmp_path / "artifacts").exists(), list((tmp_path / "artifacts").rglob("*"))
    assert table_hashes(warehouse) == before


def test_utf8_bom_csv_is_read_with_its_first_column(tmp_path, warehouse):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffcase_number,prompt,evaluation_seed\n0,a cat,7\n1,a dog,8\n".encode())
    spec = _spec(tmp_path, warehouse, prompt_sets=[{"name": "bom", "file": str(path)}])
    result = CliRunner().invoke(_app(), ["plan", str(spec)])
    assert result.exit_code == 0, result.output
    run_id = json.loads(result.stdout.strip().splitlines()[-1])["run_id"]
    plan = json.loads((tmp_path / "artifacts" / run_id / "plan.json").read_text())
    assert [(p["case_number"], p["prompt"], p["seed"]) for p in plan["prompts"]] == [
        ("0", "a cat", 7),
        ("1", "a dog", 8),
    ]


@pytest.mark.slow
def test_cases_in_a_real_subprocess(tmp_path, warehouse):
    """A sample of the corpus through a fresh interpreter: the line on real stderr, no traceback."""
    before = table_hashes(warehouse)
    for name in ("knob_inf", "seed_2_63", "yaml_alias_bomb", "manifest_without_keys"):
        case = next(c for c in CASES if c.name == name)
        tmp = tmp_path / name
        tmp.mkdir()
        one_line_error(cli(*case.build(tmp, warehouse), timeout=120), *case.expect)
        shutil.rmtree(tmp)
    assert table_hashes(warehouse) == before
