"""The studio's Qt-free session: project, model, current image, items, detections and parameters, and the
events listeners get — driven without any Qt, as the window drives it."""

from collections import Counter
from dataclasses import replace

import pytest

from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.errors import DeepMarkError
from deepmark.core.inference.detector import TestTimeAugmentation
from deepmark.core.studio.display import open_demo_project
from deepmark.core.studio.session import EVENTS, Session


@pytest.fixture
def session(tmp_path):
    s = Session(PostprocessParams.all_techniques(score_threshold=0.0, max_detections=6), heads_dir=tmp_path / "heads")
    yield s
    s.shutdown()


@pytest.fixture
def heard(session):
    """Every event the session emits, in order, with the messages of ``error`` / ``info``."""
    log: list[tuple] = []
    for name in EVENTS:
        session.events.connect(name, lambda *args, name=name: log.append((name, *args)))
    return log


def _names(log) -> list[str]:
    return [entry[0] for entry in log]


def test_open_a_project_and_show_an_image(session, heard, tiny_onnx, tmp_path):
    project, _ = open_demo_project(tmp_path / "demo")
    session.open_project(project)
    assert session.project is project and session.record is None and _names(heard) == ["project"]
    assert session.load_model(tiny_onnx) and session.model is not None
    assert "model" in _names(heard)

    heard.clear()
    record = project.images.get(project.images.ids()[0])
    session.show_image(record)
    assert session.rgb is not None and session.rgb.ndim == 3
    assert len(session.items) > 0 and len(session.detections) == 6
    assert _names(heard)[:3] == ["image", "items", "detections"]
    # predictions stored once under the model's run, and the image's row re-read
    assert len(project.predictions.for_image(record.id)) == 6
    assert session.record.status == "predicted" and "record" in _names(heard)
    assert session.model.runs == 1


def test_parameters_and_tta_redecode_without_running_the_network_twice(session, heard, tiny_onnx, tmp_path):
    project, _ = open_demo_project(tmp_path / "demo")
    session.open_project(project)
    session.load_model(tiny_onnx)
    session.show_image(project.images.get(project.images.ids()[0]))
    runs = session.model.runs
    heard.clear()
    session.set_params(PostprocessParams.all_techniques(score_threshold=0.0, max_detections=2))
    assert len(session.detections) == 2 and session.model.runs == runs and _names(heard) == ["detections"]
    session.set_tta(TestTimeAugmentation(flip=True))
    assert session.model.runs == runs + 1  # one network run for the new setting
    session.set_tta(TestTimeAugmentation())
    assert session.model.runs == runs + 1  # the first setting's heads are still cached


def test_another_project_clears_the_image_and_forgets_heads(session, heard, tiny_onnx, tmp_path):
    first, _ = open_demo_project(tmp_path / "a")
    session.open_project(first)
    session.load_model(tiny_onnx)
    session.show_image(first.images.get(first.images.ids()[0]))
    assert session.heads() is not None
    second, _ = open_demo_project(tmp_path / "b")
    session.open_project(second)
    assert session.record is None and session.items == [] and session.detections == [] and session.heads() is None
    assert len(session.model.cache) == 0


def test_problems_are_events_never_exceptions(session, heard, tiny_onnx, tmp_path):
    assert not session.load_model(tmp_path / "missing.onnx")
    assert session.model is None and heard[-1][0] == "error" and "missing.onnx" in heard[-1][1]
    assert session.load_model(tiny_onnx)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    assert not session.load_model(broken)
    assert session.model is not None and "still using" in heard[-1][1]

    project, _ = open_demo_project(tmp_path / "demo")
    session.open_project(project)
    record = project.images.get(project.images.ids()[0])
    heard.clear()
    gone = replace(record, path="no/such/image.jpg")
    session.show_image(gone)
    assert session.rgb is None and session.detections == []
    assert Counter(_names(heard))["error"] == 1 and "no/such/image.jpg" in heard[0][1]


def test_unknown_event_names_are_refused(session):
    with pytest.raises(DeepMarkError, match="no session event"):
        session.events.connect("imagee", lambda: None)


@pytest.mark.parametrize("broken", ["nan", "shape"])
def test_a_broken_model_output_marks_nothing(session, heard, tiny_onnx, tmp_path, broken):
    """NaN heads or heads of the wrong shape: the problem is said (and stays), nothing is stored, the image
    is not marked predicted under an empty model run."""
    import numpy as np

    project, _ = open_demo_project(tmp_path / "demo")
    session.open_project(project)
    session.load_model(tiny_onnx)
    real = session.model.detector.heads

    def bad_heads(rgb, tta):
        heads = real(rgb, tta)
        if broken == "nan":
            return replace(heads, hm=np.full_like(heads.hm, np.nan))
        return replace(heads, hm_hp=heads.hm_hp[:5])

    session.model.detector.heads = bad_heads
    record = project.images.get(project.images.ids()[1])
    heard.clear()
    session.show_image(record)
    problems = [entry for entry in heard if entry[0] == "model_problem"]
    assert problems and problems[-1][1] is not None and record.path in problems[-1][1]
    assert session.model_problem is not None and session.detections == []
    assert project.images.get(record.id).status == "new"
    assert project.predictions.for_image(record.id) == [] and project.model_runs.list() == []


def test_parameters_belong_to_the_project_and_the_model(session, heard, tiny_onnx, tmp_path):
    """A project keeps its own parameters; a project without any takes the model's recommendation, never
    what another project left; a model recommending other values than a project's own is offered."""
    import shutil

    from deepmark.core.formats.model_file import set_recommended_params
    from deepmark.core.store import Project
    from deepmark.core.store.presets import project_params

    recommending = tmp_path / "recommending.onnx"
    shutil.copy(tiny_onnx, recommending)
    set_recommended_params(recommending, {"score_threshold": 0.2, "alpha": 0.5})
    assert session.load_model(recommending)
    assert session.params.score_threshold == 0.2 and session.params.alpha == 0.5  # the model's, no project yet

    first = Project.create(tmp_path / "a.deepmark", root=tmp_path)
    session.open_project(first)
    session.params = PostprocessParams.all_techniques(score_threshold=0.0)  # a user's slider
    session.save_params()
    assert project_params(first).score_threshold == 0.0

    second = Project.create(tmp_path / "b.deepmark", root=tmp_path)
    heard.clear()
    session.open_project(second)
    assert session.params.score_threshold == 0.2 and ("params",) in heard  # not the 0 from project a

    session.open_project(Project.open(tmp_path / "a.deepmark"))
    assert session.params.score_threshold == 0.0  # a's own, kept

    other = tmp_path / "other.onnx"
    shutil.copy(tiny_onnx, other)
    set_recommended_params(other, {"score_threshold": 0.3})
    heard.clear()
    assert session.load_model(other)
    offers = [entry for entry in heard if entry[0] == "params_offer"]
    assert offers and offers[0][1].score_threshold == 0.3
    assert session.params.score_threshold == 0.0  # offered, not imposed


def test_with_later_the_image_comes_first_and_a_left_image_is_never_decoded(tmp_path, tiny_onnx):
    """``later``: show_image gives the image and its items at once and decodes only when ``later`` runs the
    deferred step — and not at all when the user has moved to another image by then."""
    deferred = []
    session = Session(PostprocessParams.all_techniques(score_threshold=0.0, max_detections=6),
                      heads_dir=tmp_path / "heads", later=deferred.append)
    project, _ = open_demo_project(tmp_path / "demo")
    session.open_project(project)
    session.load_model(tiny_onnx)
    first, second = (project.images.get(i) for i in project.images.ids()[:2])
    session.show_image(first)
    assert session.rgb is not None and session.items and not session.detections and len(deferred) == 1
    session.show_image(second)
    deferred.pop(0)()  # the first image's step, run after the user left it: nothing happens
    assert not session.detections and session.model.runs == 0
    deferred.pop(0)()
    assert len(session.detections) == 6 and session.model.runs == 1 and session.record.id == second.id
    assert not project.predictions.for_image(first.id) and project.predictions.for_image(second.id)
    session.shutdown()
