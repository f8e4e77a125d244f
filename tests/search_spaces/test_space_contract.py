"""Contract tests run over every registered search space: adding a YAML file adds its tests."""

from __future__ import annotations

import math
import re
from pathlib import Path

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search_spaces import ArchError, analyze, decode, encode, load_space, reference, space_names
from search_spaces.space import SearchSpace

SPACES = space_names()
PARAM_NAME = re.compile(r"resolution|stem_(kernel|stride|width|act)|head_(width|fc|act)"
                        r"|s[1-9]\d*_(stride|type|kernel|expansion|depth|width|se|act)")

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _sampled(space: SearchSpace, seed: int, n: int = 25, resolution: int | None = None
             ) -> list[tuple[optuna.trial.Trial, object]]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append((trial, space.sample(trial, num_classes=10, resolution=resolution)))
    return out


def test_packaged_spaces_are_registered() -> None:
    assert {"edgetpu", "mobilenet_v2", "mobilenet_v3"} <= set(SPACES)


@pytest.mark.parametrize("name", SPACES)
def test_samples_round_trip_are_members_and_analyse(name: str) -> None:
    space = load_space(name)
    for trial, arch in _sampled(space, seed=0):
        assert decode(encode(arch)) == arch
        assert arch.num_classes == 10
        assert space.contains(arch)
        assert space.params_for(arch) == trial.params
        assert space.build(trial.params, num_classes=10) == arch
        analysis = analyze(arch)
        assert analysis.params > 0 and analysis.macs > 0


@pytest.mark.parametrize("name", SPACES)
def test_parameter_names_are_stable_and_follow_the_scheme(name: str) -> None:
    space = load_space(name)
    names = space.param_names()
    assert names and all(PARAM_NAME.fullmatch(n) for n in names), names
    for seed in (1, 2):
        for trial, _ in _sampled(space, seed=seed, n=5):
            assert tuple(trial.params) == names  # same names, same order, in every trial of every run
    assert set(space.choices()) >= set(names)


@pytest.mark.parametrize("name", SPACES)
def test_size_is_the_product_of_the_choices(name: str) -> None:
    space = load_space(name)
    assert space.size() == math.prod(len(v) for v in space.choices().values()) > 1
    assert space.size() == math.prod(len(space.choices()[n]) for n in space.param_names())


@pytest.mark.parametrize("name", SPACES)
def test_fixed_resolution_is_not_a_parameter(name: str) -> None:
    space = load_space(name)
    res = next(r for r in (48, 50, 52) if r not in space.choices()["resolution"])
    for trial, arch in _sampled(space, seed=3, n=5, resolution=res):
        assert arch.resolution == res and "resolution" not in trial.params
        assert space.contains(arch, resolution=res)
        assert not space.contains(arch)  # not among the resolution choices
        assert space.params_for(arch, resolution=res) == trial.params


@pytest.mark.parametrize("name", SPACES)
def test_default_small_and_listed_references_are_members(name: str) -> None:
    space = load_space(name)
    small = space.default_small(num_classes=10)
    assert space.contains(small) and small.num_classes == 10
    for ref in space.references:
        assert space.contains(reference(ref)), ref


@pytest.mark.parametrize("name", SPACES)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_build_and_params_for_are_inverse(name: str, data: st.DataObject) -> None:
    space = load_space(name)
    choices = space.choices()
    params = data.draw(st.fixed_dictionaries({n: st.sampled_from(choices[n]) for n in space.param_names()}))
    arch = space.build(params, num_classes=data.draw(st.integers(2, 1000)))
    assert decode(encode(arch)) == arch
    assert space.params_for(arch) == params


@pytest.mark.parametrize("name", SPACES)
def test_members_differ_from_each_other(name: str) -> None:
    """Changing any one parameter changes the architecture, so size() counts distinct architectures."""
    space = load_space(name)
    choices = space.choices()
    base = {n: choices[n][0] for n in space.param_names()}
    seen = {encode(space.build(base, num_classes=10))}
    for n in space.param_names():
        for value in choices[n][1:]:
            seen.add(encode(space.build({**base, n: value}, num_classes=10)))
    assert len(seen) == 1 + sum(len(choices[n]) - 1 for n in space.param_names())


@pytest.mark.parametrize("ref", ["efficientnet_edgetpu_s", "efficientnet_edgetpu_m", "efficientnet_edgetpu_l"])
def test_efficientnet_edgetpu_references_are_members_of_edgetpu(ref: str) -> None:
    space = load_space("edgetpu")
    arch = reference(ref)
    assert space.contains(arch)
    study = optuna.create_study()
    study.enqueue_trial(space.params_for(arch))
    assert space.sample(study.ask(), num_classes=1000) == arch  # seeding a study with a reference


def test_edgetpu_first_stage_expansion_of_l_round_trips_as_3_2() -> None:
    params = load_space("edgetpu").params_for(reference("efficientnet_edgetpu_l"))
    assert params["s1_expansion"] == 3.2 and params["resolution"] == 300 and params["stem_width"] == 40


def test_parameters_stored_by_optuna_rebuild_the_same_architectures(tmp_path: Path) -> None:
    space = load_space("edgetpu")
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=storage, study_name="s", sampler=optuna.samplers.RandomSampler(seed=4))
    study.enqueue_trial(space.params_for(reference("efficientnet_edgetpu_l")))
    archs = []
    for _ in range(2):  # the enqueued reference and one random sample
        trial = study.ask()
        archs.append(space.sample(trial, num_classes=10))
        study.tell(trial, 0.0)
    stored = optuna.load_study(study_name="s", storage=storage).trials
    assert [space.build(t.params, num_classes=10) for t in stored] == archs
    assert archs[0] == reference("efficientnet_edgetpu_l", num_classes=10)


def test_edgetpu_default_small_is_a_narrow_32px_candidate() -> None:
    small = load_space("edgetpu").default_small(num_classes=10)
    assert small.resolution == 32 and small.num_classes == 10
    assert all(b.repeats == 1 and b.out_channels <= 96 and b.se_ratio == 0 for b in small.blocks)
    assert analyze(small).params < 200_000


@pytest.mark.parametrize("arch, field", [
    (reference("mobilenet_v2"), "stages"),
    (reference("efficientnet_edgetpu_s").with_resolution(33), "resolution"),
    (decode("r224_n10/cn_k3_s2_c32_relu/er_k3_s1_e3_c24_relu/er_r2_k3_s2_e8_c32_relu/er_r4_k3_s2_e8_c48_relu/"
            "ir_r5_k5_s2_e8_c96_relu/ir_r4_k5_s1_e8_c144_relu/ir_r2_k5_s2_e8_c200_relu/head_c1280_relu"), "s6_width"),
    (decode("r224_n10/cn_k3_s2_c32_relu/er_k3_s1_e3_c24_relu/er_r2_k3_s2_e8_c32_relu/er_r4_k3_s2_e8_c48_relu/"
            "ir_r5_k5_s2_e8_c96_relu/ir_r4_k5_s1_e8_c144_relu/ir_r2_k5_s2_e8_c192_relu_noskip/head_c1280_relu"),
     "noskip"),
    (decode("r224_n10/cn_k3_s2_c32_relu/er_k3_s1_e3_c24_relu/er_r2_k3_s2_e8_c32_relu/er_r4_k3_s2_e8_c48_relu/"
            "ir_r5_k5_s2_e8_c96_relu/ir_r4_k5_s1_e8_c144_relu/ir_r2_k5_s2_e8_c192_se0.25_relu/head_c1280_relu"),
     "s6_se"),
])
def test_non_members_name_the_first_field_that_differs(arch: object, field: str) -> None:
    space = load_space("edgetpu")
    assert not space.contains(arch)  # type: ignore[arg-type]
    with pytest.raises(ArchError, match=field):
        space.params_for(arch)  # type: ignore[arg-type]


def test_build_rejects_missing_unexpected_and_unknown_values() -> None:
    space = load_space("edgetpu")
    params = space.params_for(reference("efficientnet_edgetpu_s"))
    with pytest.raises(ArchError, match="missing parameter.*s1_width"):
        space.build({k: v for k, v in params.items() if k != "s1_width"}, num_classes=10)
    with pytest.raises(ArchError, match="unexpected parameter 's9_width'"):
        space.build({**params, "s9_width": 8}, num_classes=10)
    with pytest.raises(ArchError, match="resolution is fixed at 32"):
        space.build(params, num_classes=10, resolution=32)
    with pytest.raises(ArchError, match=r"s2_width=20 is not a choice.*expected one of 16, 24, 32, 40"):
        space.build({**params, "s2_width": 20}, num_classes=10)
