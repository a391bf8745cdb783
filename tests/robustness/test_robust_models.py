"""Model files are checked when they are loaded, not at the first image (issue 12, points 2 and 3).

Bad models are built here: tiny ONNX graphs (average-pool to stride 4, one 1×1 convolution per head,
sigmoid on the heatmaps) whose input, heads and metadata each test breaks one way, plus the real exported
``tiny_onnx`` network with edited metadata. Each way a model can be wrong is one category of case: the
model is refused at load with one line naming the file and the problem, or — when its output turns NaN on
some real images only — those images are a named error and nothing is stored for them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deepmark.core.centernet.decode import decode_detections
from deepmark.core.domain.structures import HEAD_NAMES, HEATMAP_HEADS, PostprocessParams
from deepmark.core.errors import DeepMarkError
from deepmark.core.formats.model_file import METADATA_KEY, ModelFileError, model_info, read_model_info
from deepmark.core.imaging.preprocess import BORDER_VALUE, to_network_input
from deepmark.core.inference.detector import Detector, ModelOutputError, TestTimeAugmentation
from deepmark.core.inference.predict import predict_images
from deepmark.core.studio.batch import run_batch
from deepmark.core.studio.display import open_demo_project
from deepmark.core.studio.heads_cache import HeadsDiskCache, image_key, model_key
from deepmark.core.studio.session import Session

PARAMS = PostprocessParams.all_techniques(score_threshold=0.0, max_detections=5)
DARK_THRESHOLD = -1.0  # the "dark" model's output is NaN where an image's mean normalised input is below this


# -- building models -------------------------------------------------------------------------------


def _metadata(taxonomy, grouping, size=(64, 64), **changes) -> str:
    """The metadata JSON of a model of ``grouping`` at input ``size``, fields replaced by ``changes``."""
    data = json.loads(model_info("tiny-graph", grouping, taxonomy, size).to_json())
    data.update(changes)
    return json.dumps(data)


def build_model(path: Path, taxonomy, grouping, *, metadata: str | None = "default", input_size=(64, 64),
                input_name: str = "image", input_shape=("batch", 3, "height", "width"), channels_last=False,
                heads=HEAD_NAMES, channels: dict | None = None, pool: int = 4, sigmoid=True, nan: str = "never",
                reshape_batch_1=False, swap_weights=False, extra_input=False) -> Path:
    """A tiny CenterNet-shaped ONNX model: (B, 3, H, W) → AveragePool(``pool``) → per head a 1×1 conv
    (weights from a fixed seed, heatmap biases −2.19 as a trained head's) → sigmoid on the heatmaps.
    ``nan``: "never", "always" (hm is NaN), "dark" (hm is NaN for the images whose mean input is below
    ``DARK_THRESHOLD``); ``swap_weights``: the conv weights' input channels reversed (for a BGR twin)."""
    rng = np.random.default_rng(0)
    sizes = dict(grouping.head_channels(taxonomy.num_classes), **(channels or {}))
    nodes, inits = [], []
    image = "image_nchw" if channels_last else input_name
    if channels_last:
        nodes.append(helper.make_node("Transpose", [input_name], [image], perm=[0, 3, 1, 2]))
    nodes.append(helper.make_node("AveragePool", [image], ["pooled"], kernel_shape=[pool, pool], strides=[pool, pool]))
    features = "pooled"
    if reshape_batch_1:  # claims a dynamic batch, but a reshape bakes in batch 1
        inits.append(numpy_helper.from_array(np.array([1, 3, 16, 16], np.int64), "fixed_shape"))
        nodes.append(helper.make_node("Reshape", ["pooled", "fixed_shape"], ["reshaped"]))
        features = "reshaped"
    if nan == "dark":
        inits += [numpy_helper.from_array(np.array(DARK_THRESHOLD, np.float32), "threshold"),
                  numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
        nodes += [helper.make_node("ReduceMean", [image], ["mean"], axes=[1, 2, 3], keepdims=1),
                  helper.make_node("Sub", ["mean", "threshold"], ["shifted"]),
                  helper.make_node("Sqrt", ["shifted"], ["root"]),  # NaN below the threshold, per image
                  helper.make_node("Mul", ["root", "zero"], ["gate"])]  # 0 above it, NaN below
    elif nan == "always":
        inits.append(numpy_helper.from_array(np.array(np.nan, np.float32), "gate"))
    batch_dim = input_shape[0]
    outputs = []
    for name in heads:
        weight = rng.normal(0.0, 0.5, (sizes[name], 3, 1, 1)).astype(np.float32)
        if swap_weights:
            weight = weight[:, ::-1].copy()
        bias = np.full(sizes[name], -2.19 if name in HEATMAP_HEADS else 0.0, np.float32)
        inits += [numpy_helper.from_array(weight, f"{name}_w"), numpy_helper.from_array(bias, f"{name}_b")]
        nodes.append(helper.make_node("Conv", [features, f"{name}_w", f"{name}_b"], [f"{name}_conv"]))
        last = f"{name}_conv"
        if name in HEATMAP_HEADS and sigmoid:
            nodes.append(helper.make_node("Sigmoid", [last], [f"{name}_sig"]))
            last = f"{name}_sig"
        if name == "hm" and nan != "never":
            nodes.append(helper.make_node("Add", [last, "gate"], ["hm_gated"]))
            last = "hm_gated"
        nodes.append(helper.make_node("Identity", [last], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch_dim, sizes[name], "mh", "mw"]))
    inputs = [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(input_shape))]
    if extra_input:
        inputs.append(helper.make_tensor_value_info("scale", TensorProto.FLOAT, [1]))
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata is not None:
        entry = model.metadata_props.add()
        entry.key = METADATA_KEY
        entry.value = _metadata(taxonomy, grouping, input_size) if metadata == "default" else metadata
    onnx.save(model, str(path))
    return path


def with_metadata(source: Path, target: Path, **changes) -> Path:
    """A copy of the model ``source`` with its metadata fields replaced by ``changes``."""
    model = onnx.load(str(source))
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            prop.value = json.dumps({**json.loads(prop.value), **changes})
    onnx.save(model, str(target))
    return target


@pytest.fixture
def make(tmp_path, taxonomy, semantic62):
    """``make(name, **options)``: a ``build_model`` file in the test's folder."""
    return lambda name, **options: build_model(tmp_path / name, taxonomy, semantic62, **options)


def _noise(seed: int, shape=(90, 120, 3)) -> np.ndarray:
    """An ordinary picture's values: uniform noise over 0–255, mean ≈ 128."""
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


DARK = np.zeros((64, 64, 3), np.uint8)  # black, fills the whole input: its mean input is ≈ −2


def _refused(path: Path, *fragments: str) -> ModelFileError:
    """Loading ``path`` is refused with one line that names the file and every fragment."""
    with pytest.raises(ModelFileError) as caught:
        Detector(path, threads=1)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and caught.value.path == path
    for fragment in fragments:
        assert fragment in message, message
    return caught.value


# -- models that work ------------------------------------------------------------------------------


def test_the_default_model_passes_its_checks_and_its_preprocessing_is_unchanged():
    detector = Detector(threads=1)
    info = detector.info
    assert (info.color_order, info.mean, info.std) == ("RGB", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert detector.input_spec.batch is None and detector.input_spec.height is None
    pictures = [_noise(1, (64, 64, 3)), _noise(2, (64, 64, 3))]
    assert np.array_equal(detector.network_input(pictures), to_network_input(pictures))
    assert detector._border == BORDER_VALUE == (124, 116, 104)


def test_the_test_graph_loads_and_runs(make):
    detector = Detector(make("good.onnx"), threads=1)
    heads = detector.heads(_noise(0))
    assert heads.hm.shape == (13, 16, 16) and 0.0 <= heads.hm.min() <= heads.hm.max() <= 1.0


@pytest.mark.parametrize("batch", [1, 3])
def test_a_fixed_batch_is_fed_that_many_images_at_a_time(make, batch):
    dynamic = Detector(make("dynamic.onnx"), threads=1)
    fixed = Detector(make("fixed.onnx", input_shape=(batch, 3, "height", "width")), threads=1)
    assert fixed.input_spec.batch == batch
    images = [_noise(seed, (40 + 10 * seed, 60, 3)) for seed in range(5)]
    for tta in (TestTimeAugmentation(), TestTimeAugmentation(flip=True)):  # flip doubles the batch
        for a, b in zip(dynamic.heads_batch(images, tta), fixed.heads_batch(images, tta), strict=True):
            for name in HEAD_NAMES:
                np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-5, atol=1e-6)


def test_a_fixed_input_size_is_fed_at_that_size(make, taxonomy, semantic62):
    path = make("fixed-size.onnx", input_shape=("batch", 3, 96, 128),
                metadata=_metadata(taxonomy, semantic62, (128, 96)))
    detector = Detector(path, threads=1)
    assert (detector.input_spec.width, detector.input_spec.height) == (128, 96)
    for shape in [(90, 120, 3), (300, 100, 3), (50, 400, 3)]:  # any image: letterboxed to 128×96
        assert detector.heads(_noise(0, shape)).map_size == (24, 32)
    # another size cannot be fed: a clear error naming the file, not onnxruntime's
    for tta, size in [(TestTimeAugmentation(scales=(0.85, 1.0)), None), (TestTimeAugmentation(), (256, 256))]:
        with pytest.raises(DeepMarkError, match="fixed-size.onnx.*128×96 inputs only") as caught:
            detector.heads(_noise(0), tta, size)
        assert not isinstance(caught.value, ModelOutputError)


# -- models refused at load ------------------------------------------------------------------------

REFUSED = {
    # name: (build_model options, fragments of the message)
    "no metadata": (dict(metadata=None), ["no DeepMark metadata"]),
    "metadata not JSON": (dict(metadata="{mean: imagenet"), ["not JSON"]),
    "metadata not an object": (dict(metadata="[1, 2]"), ["must be a JSON object"]),
    "wrong input name": (dict(input_name="input.1"), ["inputs are ['input.1']", "'image'"]),
    "two inputs": (dict(extra_input=True), ["inputs are ['image', 'scale']"]),
    "channels last (NHWC)": (dict(input_shape=("batch", "height", "width", 3), channels_last=True), ["NHWC"]),
    "not 3 channels": (dict(input_shape=("batch", 4, "height", "width")), ["4 channels"]),
    "a missing head": (dict(heads=tuple(h for h in HEAD_NAMES if h != "hm_hp")), ["no output 'hm_hp'"]),
    "a head of the wrong channel count": (dict(channels={"hm": 12}), ["head 'hm' has shape (2, 12, 16, 16)",
                                                                      "expected (2, 13, 16, 16)"]),
    "a head map of the wrong stride": (dict(pool=2), ["head 'hm' has shape (2, 13, 32, 32)"]),
    "heatmap without sigmoid": (dict(sigmoid=False), ["heatmap 'hm' spans", "expected [0, 1]"]),
    "NaN always": (dict(nan="always"), ["head 'hm' contains NaN or infinite values"]),
    "fixed size not the metadata's": (dict(input_shape=("batch", 3, 96, 128)), ["fixes the input width at 128",
                                                                               "input_size says 64"]),
    "batch axis not really dynamic": (dict(reshape_batch_1=True), ["fails on a test input of 2×3×64×64"]),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_model_that_fails_a_check_is_refused_at_load(make, case):
    options, fragments = REFUSED[case]
    _refused(make("bad.onnx", **options), *fragments)


WRONG_FIELDS = {
    "arch": [None, 3, ""],
    "grouping_name": [62, ["semantic62"]],
    "landmark_to_group": ["semantic62", [0.5] * 294, [True] * 294],
    "category_ids": ["1-13", [1.0] * 13, None],
    "category_names": ["top", [1] * 13, ["top"] * 12],
    "input_size": [256, [256], [256, "256"], [250, 256], [0, 256], [256.0, 256.0]],
    "mean": ["imagenet", [0.485, 0.456], [123.675, 116.28, 103.53], [0.5, "0.5", 0.5], [None, 0.5, 0.5]],
    "std": ["imagenet", [0.229, 0.224, 0.225, 1.0], [0.0, 0.2, 0.2], [58.4, 57.1, 57.4], [-0.2, 0.2, 0.2]],
    "color_order": ["rgb", "RGBA", 1, ["R", "G", "B"]],
    "output_names": ["hm", [1, 2]],
    "output_stride": ["4", 8, 4.0],
    "precision": [32, ""],
    "training": ["20 epochs", [1], {"postprocess": "tuned"}],
    "training_data": [5, ["synthetic"]],
}


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, values in WRONG_FIELDS.items() for v in values],
                         ids=lambda v: repr(v)[:30])
def test_a_metadata_field_of_the_wrong_type_or_range_is_refused(make, taxonomy, semantic62, field, value):
    path = make("bad.onnx", metadata=_metadata(taxonomy, semantic62, **{field: value}))
    _refused(path, f"field '{field}' must be")
    with pytest.raises(ModelFileError, match=f"field '{field}'"):  # the same check, without loading the weights
        read_model_info(path)


@pytest.mark.parametrize("field", ["arch", "grouping_name", "landmark_to_group", "category_ids", "category_names",
                                   "input_size", "mean", "std", "version"])
def test_a_missing_metadata_field_is_refused(make, taxonomy, semantic62, field):
    data = json.loads(_metadata(taxonomy, semantic62))
    del data[field]
    _refused(make("bad.onnx", metadata=json.dumps(data)), "version is None" if field == "version" else
             f"lacks the field '{field}'")


def test_an_unknown_metadata_field_is_refused(make, taxonomy, semantic62):
    _refused(make("bad.onnx", metadata=_metadata(taxonomy, semantic62, normalise="imagenet")),
             "unknown field 'normalise'")


def test_a_grouping_map_that_does_not_fit_is_refused_naming_the_file(make, taxonomy, semantic62):
    _refused(make("bad.onnx", metadata=_metadata(taxonomy, semantic62, landmark_to_group=[0] * 10)), "bad.onnx")


@pytest.mark.parametrize("damage", ["empty", "garbage", "truncated 10%", "truncated 60%", "truncated 99%",
                                    "a folder", "missing"])
def test_a_truncated_or_garbage_model_file_is_refused(tmp_path, make, damage):
    good = make("good.onnx").read_bytes()
    path = tmp_path / "damaged.onnx"
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif damage.startswith("truncated"):
        path.write_bytes(good[: len(good) * int(damage.split()[1][:-1]) // 100])
    elif damage == "a folder":
        path.mkdir()
    _refused(path)


# -- NaN on some real images only: a named error for each, nothing stored ---------------------------


@pytest.fixture
def dark_nan(make):
    """A model that passes its load checks (the probe picture is not dark) but gives NaN on dark images."""
    return make("dark-nan.onnx", nan="dark")


def test_nan_on_one_real_image_is_an_error_for_that_image(dark_nan):
    detector = Detector(dark_nan, threads=1)  # loads: the dry run's picture is an ordinary one
    for tta in (TestTimeAugmentation(), TestTimeAugmentation(flip=True), TestTimeAugmentation(scales=(0.5, 1.0))):
        results = detector.heads_each([_noise(0), DARK, _noise(1)], tta)
        assert not isinstance(results[0], DeepMarkError) and not isinstance(results[2], DeepMarkError)
        assert isinstance(results[1], ModelOutputError) and results[1].path is None  # the caller names the image
        assert "dark-nan.onnx" in str(results[1]) and "NaN" in str(results[1])
        with pytest.raises(ModelOutputError):
            detector.heads_batch([_noise(0), DARK], tta)
        with pytest.raises(ModelOutputError):
            detector.heads(DARK, tta)


def _write_images(folder: Path, names_and_pictures) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, picture in names_and_pictures:
        cv2.imwrite(str(folder / name), picture[..., ::-1])
        paths.append(folder / name)
    return paths


def test_predict_skips_the_nan_image_by_name_and_writes_the_rest(dark_nan, tmp_path):
    images = _write_images(tmp_path / "in", [("a.png", _noise(0)), ("dark.png", DARK), ("b.png", _noise(1))])
    out = tmp_path / "out"
    summary = predict_images(images, out, Detector(dark_nan, threads=1), PARAMS, save_raw_heads=True, batch_size=4)
    assert [e.path.name for e in summary.failed] == ["dark.png"]
    assert "dark.png: " in str(summary.failed[0]) and "NaN" in str(summary.failed[0])
    assert sorted(p.name for p in out.glob("*.json")) == ["a.json", "b.json"]
    assert sorted(p.name for p in (out / "heads").glob("*.npz")) == ["a.npz", "b.npz"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deepmark.core.cli.main", *args], capture_output=True, text=True,
                          timeout=300)


def test_cli_predict_with_a_bad_model_says_one_line_and_writes_nothing(make, tmp_path):
    image = _write_images(tmp_path / "in", [("a.png", _noise(0))])[0]
    for bad in (make("nan.onnx", nan="always"), make("nhwc.onnx", input_shape=("b", "h", "w", 3), channels_last=True),
                make("fails.onnx", reshape_batch_1=True), make("meta.onnx", metadata='{"version": 1}')):
        out = tmp_path / f"out-{bad.stem}"
        done = _cli("predict", str(image), "--model", str(bad), "--out", str(out), "--quiet")
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and str(bad) in lines[0] and "Traceback" not in done.stderr
        assert not out.exists()


def test_cli_predict_names_the_nan_image_and_finishes_the_rest(dark_nan, tmp_path):
    _write_images(tmp_path / "in", [("a.png", _noise(0)), ("dark.png", DARK)])
    out = tmp_path / "out"
    done = _cli("predict", str(tmp_path / "in"), "--model", str(dark_nan), "--out", str(out), "--quiet")
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "dark.png" in errors[0] and "NaN" in errors[0] and "Traceback" not in done.stderr
    assert sorted(p.name for p in out.glob("*.json")) == ["a.json"]


@pytest.fixture
def project_with_dark_image(tmp_path):
    project, _ = open_demo_project(tmp_path / "demo")
    dark = _write_images(tmp_path / "demo", [("dark.png", DARK)])[0]
    record = project.images.add(dark)
    yield project, record
    project.close()


def test_a_batch_job_stores_nothing_for_the_nan_image_and_names_it(dark_nan, project_with_dark_image, tmp_path):
    project, dark = project_with_dark_image
    detector = Detector(dark_nan, threads=1)
    cache = HeadsDiskCache(tmp_path / "heads")
    report = run_batch(project, detector, project.images.ids(), PARAMS, heads_cache=cache)
    assert [e.path.name for e in report.errors] == ["dark.png"] and "NaN" in report.errors[0].message
    assert report.stored == 8 and dark.id not in report.processed_ids
    assert project.predictions.for_image(dark.id) == []
    assert cache.load(image_key(dark), model_key(dark_nan), TestTimeAugmentation().key()) is None  # nor cached


def test_the_live_view_stores_nothing_for_the_nan_image_and_names_it(dark_nan, project_with_dark_image, tmp_path):
    project, dark = project_with_dark_image
    session = Session(PARAMS, heads_dir=tmp_path / "heads")
    try:
        session.open_project(project)
        assert session.load_model(dark_nan)
        session.show_image(dark)
        assert session.model_problem is not None and "dark.png" in session.model_problem
        assert "NaN" in session.model_problem and session.detections == []
        assert project.predictions.for_image(dark.id) == [] and project.images.get(dark.id).status == "new"
        session.show_image(project.images.get(project.images.ids()[0]))  # an ordinary image works again
        assert session.model_problem is None and session.detections
    finally:
        session.shutdown()


def test_a_bad_model_leaves_the_session_s_model_in_place(make, tiny_onnx, tmp_path):
    session = Session(PARAMS, heads_dir=tmp_path / "heads")
    errors = []
    session.events.connect("error", errors.append)
    try:
        assert session.load_model(tiny_onnx)
        before = session.model
        for bad in (make("nan.onnx", nan="always"), make("names.onnx", input_name="x")):
            assert not session.load_model(bad)
            assert session.model is before and str(bad) in errors[-1] and "still using tiny.onnx" in errors[-1]
    finally:
        session.shutdown()


# -- normalisation and colour order honoured ---------------------------------------------------------


def test_colour_order_and_normalisation_change_the_network_input(tiny_onnx, tmp_path):
    plain = Detector(with_metadata(tiny_onnx, tmp_path / "bgr-raw.onnx", color_order="BGR", mean=[0, 0, 0],
                                   std=[1, 1, 1]), threads=1)
    pictures = [_noise(0, (96, 128, 3))]
    expected = np.stack(pictures)[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32) / 255  # BGR, x / 255
    np.testing.assert_allclose(plain.network_input(pictures), expected, rtol=1e-6)
    assert plain._border == (0, 0, 0)  # the letterbox fill normalises to 0 for this model too
    swapped_mean = with_metadata(tiny_onnx, tmp_path / "bgr.onnx", color_order="BGR", mean=[0.406, 0.456, 0.485],
                                 std=[0.225, 0.224, 0.229])
    bgr, rgb = Detector(swapped_mean, threads=1), Detector(tiny_onnx, threads=1)
    np.testing.assert_allclose(bgr.network_input(pictures), rgb.network_input(pictures)[:, ::-1], rtol=1e-6)
    assert bgr._border == rgb._border  # the same mean colour, listed blue first


def test_colour_order_and_normalisation_change_the_predictions(tiny_onnx, tmp_path, taxonomy):
    rgb = Detector(tiny_onnx, threads=1)
    image = _noise(3, (100, 140, 3))
    reference = rgb.heads(image)
    for changes in ({"color_order": "BGR"}, {"mean": [0, 0, 0], "std": [1, 1, 1]}):
        other = Detector(with_metadata(tiny_onnx, tmp_path / "other.onnx", **changes), threads=1)
        heads = other.heads(image)
        assert not np.allclose(heads.hm, reference.hm)
        a = decode_detections(reference, PARAMS, taxonomy, rgb.grouping)
        b = decode_detections(heads, PARAMS, taxonomy, other.grouping)
        assert [(d.category_id, d.box.round(2).tolist()) for d in a] != [(d.category_id, d.box.round(2).tolist())
                                                                          for d in b]


def test_a_bgr_model_sees_what_its_rgb_twin_sees(make, taxonomy, semantic62):
    """A BGR model whose weights are its RGB twin's with the input channels reversed, and whose mean / std
    are listed in BGR order, gives the same heads: the metadata is honoured exactly, not just differently."""
    rgb = Detector(make("rgb.onnx"), threads=1)
    meta = _metadata(taxonomy, semantic62, color_order="BGR", mean=[0.406, 0.456, 0.485], std=[0.225, 0.224, 0.229])
    bgr = Detector(make("bgr.onnx", swap_weights=True, metadata=meta), threads=1)
    for image in (_noise(4), _noise(5, (200, 60, 3))):  # letterboxed: the border counts too
        a, b = rgb.heads(image), bgr.heads(image)
        for name in HEAD_NAMES:
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-4, atol=1e-5)


def test_the_model_info_keeps_what_the_metadata_says(make, taxonomy, semantic62):
    meta = _metadata(taxonomy, semantic62, color_order="BGR", mean=[0, 0.5, 1], std=[1, 0.5, 0.25])
    info = read_model_info(make("m.onnx", metadata=meta))
    assert (info.color_order, info.mean, info.std) == ("BGR", (0.0, 0.5, 1.0), (1.0, 0.5, 0.25))
