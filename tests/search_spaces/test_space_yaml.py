"""Space files: strict parsing with errors naming the file and the field, and the registry of names."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

import search_spaces.space as space_module
from search_spaces import ArchError, encode, load_space, reference, register_space, space_names
from search_spaces.space import parse_space, read_space

VALID = {
    "schema_version": 1,
    "name": "tiny",
    "description": "two stages",
    "resolution": [32, 64],
    "stem": {"kernel": 3, "stride": 2, "width": 8, "act": "relu"},
    "stage_defaults": {"type": ["er", "ir"], "kernel": 3, "expansion": [1, 3.2], "se": 0, "act": "relu"},
    "stages": [{"stride": 1, "depth": [1, 2], "width": [8, 16]}, {"stride": 2, "depth": 1, "width": 16}],
    "head": {"width": [0, 64], "fc": 0, "act": "relu"},
    "default_small": "r32_n10/cn_k3_s2_c8_relu/er_k3_s1_e1_c8_relu/er_k3_s2_e1_c16_relu/head_relu",
}


def _write(tmp_path: Path, data: object, name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_a_valid_file_reads_and_counts_every_distinct_architecture(tmp_path: Path) -> None:
    space = read_space(_write(tmp_path, VALID))
    assert space.name == "tiny" and space.num_stages == 2
    assert space.param_names() == ("resolution", "s1_type", "s1_expansion", "s1_depth", "s1_width", "s2_type",
                                   "s2_expansion", "head_width")
    choices = space.choices()
    assert choices["s1_expansion"] == (1.0, 3.2) and choices["stem_width"] == (8,)
    # Enumerate the whole space: every combination is a distinct member.
    from itertools import product

    names = space.param_names()
    archs = {str(space.build(dict(zip(names, combo, strict=True)), num_classes=10))
             for combo in product(*(choices[n] for n in names))}
    assert len(archs) == space.size() == 2 * 2 * 2 * 2 * 2 * 2 * 2 * 2


@pytest.mark.parametrize("change, field, message", [
    ({"stem": {"kernel": 4, "stride": 2, "width": 8, "act": "relu"}}, "stem_kernel", "invalid kernel 4"),
    ({"resolution": [32, 32]}, "resolution", "duplicate choice 32"),
    ({"resolution": [32, "64"]}, "resolution", "'64' is not an int"),
    ({"resolution": []}, "resolution", "empty list"),
    ({"resolution": [8]}, "resolution", "invalid resolution 8"),
    ({"head": {"width": 64, "fc": 0, "act": "gelu"}}, "head_act", "invalid activation 'gelu'"),
    ({"head": {"width": 64, "act": "relu"}}, "head", "missing key 'fc'"),
    ({"stages": [{"stride": 1, "depth": 1, "width": 8, "kernal": 3}]}, "stage 1", "unknown key 'kernal'"),
    ({"stages": [{"stride": 1, "depth": 1, "width": 8, "type": ["cn", "ir"]}]}, "s1_type/s1_expansion/s1_se",
     "no expansion token on cn/ds blocks"),
    ({"stages": []}, "stages", "non-empty list"),
    ({"stem": [3]}, "stem", "expected a mapping"),
    ({"schema_version": 2}, "schema_version", "expected 1"),
    ({"colour": "red"}, "the file", "unknown key 'colour'"),
    ({"name": "Tiny Space"}, "name", "not a lower-case identifier"),
    ({"default_small": "r32_n10/cn_k3_s2_c8_relu/ir_k3_s1_e1_c8_relu/ir_k3_s2_e1_c24_relu/head_relu"},
     "default_small", "s2_width=24 is not a choice"),
    ({"default_small": "r32_n10/bogus"}, "default_small", "has 2 '/'-separated section"),
    ({"references": ["mobilenet_v2"]}, "references: mobilenet_v2", "not a member"),
    ({"references": ["no_such_net"]}, "references", "unknown reference 'no_such_net'"),
])
def test_malformed_files_name_the_file_and_the_field(tmp_path: Path, change: dict[str, object], field: str,
                                                     message: str) -> None:
    path = _write(tmp_path, {**VALID, **change})
    with pytest.raises(ArchError) as info:
        read_space(path)
    assert str(info.value).startswith(f"{path}: {field}: ") and message in str(info.value), str(info.value)


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: [unclosed\n")
    with pytest.raises(ArchError, match=f"{path}: not valid YAML"):
        read_space(path)


def test_floats_keep_their_exact_value(tmp_path: Path) -> None:
    space = parse_space({**VALID, "stage_defaults": {**VALID["stage_defaults"], "expansion": [1, 3.2, 4.5]}},  # type: ignore[dict-item]
                        "inline")
    arch = space.build({**{n: space.choices()[n][0] for n in space.param_names()}, "s1_expansion": 3.2},
                       num_classes=10)
    assert "e3.2_" in encode(arch) and space.params_for(arch)["s1_expansion"] == 3.2


def test_unknown_space_names_it_and_lists_the_known_ones() -> None:
    with pytest.raises(ArchError, match=r"unknown search space 'nope': expected one of edgetpu, edgetpu_small, "):
        load_space("nope")


def test_a_name_registers_once() -> None:
    with pytest.raises(ArchError, match="search space 'edgetpu' is registered twice"):
        register_space(load_space("edgetpu"))
    assert space_names().count("edgetpu") == 1


def test_a_new_space_registers_once_and_is_checked_first(monkeypatch: pytest.MonkeyPatch) -> None:
    space_names()  # the packaged spaces are loaded; the registry is restored after this test
    monkeypatch.setattr(space_module, "_REGISTRY", dict(space_module._REGISTRY))
    space = parse_space({**VALID, "name": "tiny_registered"}, "inline")
    assert register_space(space) is space and load_space("tiny_registered") is space
    with pytest.raises(ArchError, match="'tiny_registered' is registered twice"):
        register_space(space)
    bad = replace(space, name="tiny_bad", small=encode(reference("mobilenet_v2")))
    with pytest.raises(ArchError, match="search space 'tiny_bad': default_small: not a member"):
        register_space(bad)
    assert "tiny_bad" not in space_names()


def test_every_packaged_file_is_registered_under_its_file_name() -> None:
    folder = Path(space_module.__file__).parent / "spaces"
    assert {p.stem for p in folder.glob("*.yaml")} <= set(space_names())


def test_importing_the_package_imports_neither_optuna_nor_yaml() -> None:
    code = "import sys, search_spaces; print('optuna' in sys.modules, 'yaml' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
