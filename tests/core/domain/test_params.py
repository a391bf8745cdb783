"""``PostprocessParams.from_mapping`` / ``from_assignments``: the one parser of post-processing parameters
(files, settings, presets, ``--set``). Values are converted strictly to their field's type, never rounded
or guessed; every refusal is a DecodeError naming the source and the field."""

import json
import math
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.errors import DecodeError

NAMES = PostprocessParams.field_names()
BOOLS = [f.name for f in fields(PostprocessParams) if f.type == "bool"]
INTS = [f.name for f in fields(PostprocessParams) if f.type == "int"]
FLOATS = [f.name for f in fields(PostprocessParams) if f.type == "float"]
UNIT = st.floats(0.0, 1.0, allow_nan=False)

valid_params = st.builds(
    PostprocessParams,
    **{name: st.booleans() for name in BOOLS},
    **{name: UNIT for name in FLOATS if not name.startswith("sigma")},
    sigma_center=st.floats(0.0, 100.0, allow_nan=False),
    sigma_keypoint=st.floats(0.0, 100.0, allow_nan=False),
    top_k=st.integers(1, 10**6),
    max_detections=st.integers(1, 10**6),
)


def test_the_field_lists_cover_every_field():
    assert sorted(BOOLS + INTS + FLOATS) == sorted(NAMES) and BOOLS and INTS and FLOATS


@given(valid_params, st.data())
def test_any_valid_params_survive_a_mapping_of_strings(params, data):
    def spelled(value) -> str:
        if isinstance(value, bool):  # any accepted spelling, in any case
            word = data.draw(st.sampled_from(["true", "yes", "1"] if value else ["false", "no", "0"]))
            return "".join(c.upper() if data.draw(st.booleans()) else c for c in word)
        return str(value)

    strings = {name: spelled(value) for name, value in asdict(params).items()}
    assert PostprocessParams.from_mapping(strings) == params
    assert PostprocessParams.from_assignments(f"{k}={v}" for k, v in strings.items()) == params


@given(valid_params)
def test_any_valid_params_survive_json(params):
    assert PostprocessParams.from_mapping(json.loads(json.dumps(asdict(params)))) == params


@given(valid_params, valid_params, st.sets(st.sampled_from(NAMES)))
def test_fields_not_named_keep_the_base_values(base, other, names):
    values = {name: getattr(other, name) for name in names}
    merged = PostprocessParams.from_mapping(values, base)
    for name in NAMES:
        assert getattr(merged, name) == getattr(other if name in names else base, name)


@given(st.sampled_from(INTS), st.floats(1.0, 1e6).filter(lambda v: not v.is_integer()), st.booleans())
def test_a_fraction_for_an_integer_field_is_refused_never_cut(name, value, as_text):
    with pytest.raises(DecodeError, match=f"{name}=.*whole number"):
        PostprocessParams.from_mapping({name: str(value) if as_text else value})


@given(st.sampled_from(INTS), st.integers(1, 10**6))
def test_whole_numbers_of_any_form_are_integers(name, value):
    for form in (value, str(value), float(value), np.int32(min(value, 2**31 - 1))):
        converted = getattr(PostprocessParams.from_mapping({name: form}), name)
        assert type(converted) is int and converted == int(form)


@given(st.sampled_from(FLOATS + INTS), st.text().filter(lambda t: not _is_number(t)))
def test_text_that_is_not_a_number_is_refused_for_a_numeric_field(name, text):
    with pytest.raises(DecodeError, match=f"{name}=.*expected a number"):
        PostprocessParams.from_mapping({name: text})


@given(st.sampled_from(FLOATS), st.sampled_from([math.nan, math.inf, -math.inf, "nan", "NaN", "inf", "-Infinity"]))
def test_nan_and_infinity_are_refused(name, value):
    with pytest.raises(DecodeError, match=f"{name}=.*finite"):
        PostprocessParams.from_mapping({name: value})


@given(st.sampled_from(BOOLS),
       st.one_of(st.text().filter(lambda t: t.strip().lower() not in ("true", "false", "yes", "no", "1", "0")),
                 st.integers().filter(lambda v: v not in (0, 1)), st.floats()))
def test_a_bool_field_takes_only_true_or_false(name, value):
    with pytest.raises(DecodeError, match=f"{name}=.*true or false"):
        PostprocessParams.from_mapping({name: value})


@given(st.sampled_from(FLOATS + INTS), st.booleans())
def test_a_bool_is_not_a_number(name, value):
    with pytest.raises(DecodeError, match=name):
        PostprocessParams.from_mapping({name: value})


@given(st.text(min_size=1).filter(lambda t: t not in NAMES))
def test_an_unknown_name_is_refused_listing_the_valid_ones(name):
    with pytest.raises(DecodeError, match="unknown post-processing parameter") as caught:
        PostprocessParams.from_mapping({name: "1"}, source="preset 'x'")
    message = str(caught.value)
    assert message.startswith("preset 'x': ") and all(valid in message for valid in NAMES)


@pytest.mark.parametrize("values", [[1, 2], "alpha=1", 0.5, None])
def test_a_file_that_is_not_an_object_names_the_file(values):
    source = Path("some/params.json")
    with pytest.raises(DecodeError, match="some/params.json: expected an object") as caught:
        PostprocessParams.from_mapping(values, source=source)
    assert caught.value.path == source


def test_range_checks_name_the_source_and_path():
    source = Path("p.json")
    with pytest.raises(DecodeError, match=r"p.json: alpha must be a number in \[0, 1\]") as caught:
        PostprocessParams.from_mapping({"alpha": "3"}, source=source)
    assert caught.value.path == source
    with pytest.raises(DecodeError, match="--set: top_k must be a positive integer") as caught:
        PostprocessParams.from_assignments(["top_k=0"])
    assert caught.value.path is None  # not a file


@pytest.mark.parametrize("item", ["alpha", "=1", "", "  =0.5"])
def test_an_assignment_without_a_name_and_value_is_refused(item):
    with pytest.raises(DecodeError, match="expected name=value"):
        PostprocessParams.from_assignments([item])


def test_later_assignments_win():
    assert PostprocessParams.from_assignments(["alpha=0.1", "alpha=0.2"]).alpha == 0.2


def _is_number(text: str) -> bool:
    try:
        float(text.strip())
        return True
    except ValueError:
        return False
