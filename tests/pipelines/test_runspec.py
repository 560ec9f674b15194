"""Run specs: validation errors name the key; run ids are pure functions of the resolved spec."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from pipelines.runspec import RunSpecError, load_spec, parse_spec, run_id_for

GOOD = {
    "name": "t",
    "model": {"id": "builtin:tiny"},
    "prompt_sets": [{"name": "core", "builtin": "benign_core", "limit": 2}],
    "methods": [{"name": "baseline"}],
    "scorers": [],
}


def write(tmp_path, data, name="spec.yaml"):
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return p


def test_good_spec_is_frozen_and_hash_stable(tmp_path):
    a = load_spec(write(tmp_path, GOOD))
    b = load_spec(write(tmp_path, GOOD, "other.yaml"))
    assert run_id_for(a) == run_id_for(b)
    assert run_id_for(a).startswith("t-")
    with pytest.raises(ValidationError, match="frozen"):
        a.name = "x"
    changed = parse_spec({**GOOD, "sampler": {"steps": 21}})
    assert run_id_for(changed) != run_id_for(a)


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"modle": {}}, "modle: unknown key"),
        ({"methods": [{"name": "baseline"}, {"name": "sldd"}]}, "methods[1].name: unknown method 'sldd'"),
        ({"methods": [{"name": "baseline", "levels": ["off", "strng"]}]}, "levels[1]: unknown level 'strng'"),
        ({"sampler": {"steps": "many"}}, "sampler.steps"),
        ({"sampler": {"scheduler": "lms"}}, "unknown scheduler 'lms'"),
        ({"scorers": ["nudenet", "nope"]}, "scorers[1]: unknown scorer 'nope'"),
        ({"methods": [{"name": "negative_prompt"}]}, "include 'baseline'"),
        ({"prompt_sets": [{"name": "x", "builtin": "benign_core", "file": "a.csv"}]}, "exactly one of"),
    ],
)
def test_bad_specs_name_the_key(tmp_path, patch, message):
    path = write(tmp_path, {**GOOD, **patch})
    with pytest.raises(RunSpecError) as exc:
        load_spec(path)
    text = str(exc.value)
    assert str(path) in text and message in text
    assert "\n" not in text


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "name: t\nmethods: [baseline\n  - x: : :\n")
    with pytest.raises(RunSpecError, match=r"spec.yaml: line \d+ malformed YAML"):
        load_spec(path)


def test_relative_prompt_files_resolve_against_the_spec(tmp_path):
    (tmp_path / "p.csv").write_text("prompt\nhello\n")
    spec = load_spec(
        write(
            tmp_path,
            {
                **GOOD,
                "prompt_sets": [
                    {"name": "x", "file": "p.csv", "format": "single_column", "column": "prompt"}
                ],
            },
        )
    )
    assert spec.prompt_sets[0].file == str(tmp_path / "p.csv")
