"""The raw-heads file format."""

import numpy as np
import pytest

from deepmark.core.domain.structures import Affine
from deepmark.core.errors import HeadsFileError
from deepmark.core.formats.heads_file import FORMAT_VERSION, load_heads, save_heads
from deepmark.core.synthetic.simulate import random_scene, simulated_heads


@pytest.fixture
def heads(taxonomy, semantic62):
    rng = np.random.default_rng(5)
    h = simulated_heads(random_scene(rng, taxonomy, (160, 96)), (160, 96), taxonomy, semantic62, rng, 0.05)
    return type(h)(**{**h.__dict__, "image_to_map": Affine(np.array([[0.2, 0, 1.5], [0, 0.2, -2.0]])),
                      "image_size": (200, 130)})


def test_round_trip_keeps_heads_and_metadata(tmp_path, heads):
    path = save_heads(tmp_path / "000042", heads, image_id=42, grouping="semantic62")
    assert path.name == "000042.npz" and not list(tmp_path.glob(".*"))  # no temporary left behind
    saved = load_heads(path)
    assert saved.image_id == 42 and saved.grouping == "semantic62"
    assert saved.heads.image_size == (200, 130)
    np.testing.assert_array_equal(saved.heads.image_to_map.matrix, heads.image_to_map.matrix)
    for name, arr in heads.arrays().items():
        got = getattr(saved.heads, name)
        assert got.dtype == np.float32 and got.shape == arr.shape
        np.testing.assert_allclose(got, arr, atol=2e-3 * max(1.0, np.abs(arr).max()))  # float16 storage


def test_bad_files_name_the_file_and_problem(tmp_path, heads):
    with pytest.raises(HeadsFileError, match="missing.npz: file not found"):
        load_heads(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(HeadsFileError, match="junk.npz: cannot read"):
        load_heads(junk)
    other = tmp_path / "other.npz"
    np.savez(other, something=np.zeros(3))
    with pytest.raises(HeadsFileError, match="not a raw-heads file"):
        load_heads(other)
    future = tmp_path / "future.npz"
    save_heads(future, heads)
    data = dict(np.load(future))
    data["format"] = np.int64(FORMAT_VERSION + 1)
    np.savez(future, **data)
    with pytest.raises(HeadsFileError, match="format 2"):
        load_heads(future)
