"""Retraining on the accepted images (``deepmark.core.studio.retrain``), with real processes: the split is
recorded and stable as the project grows, too few images and a child that crashes are one line each, a job
whose process died is found as interrupted, and (slow) a whole job — progress, cancel, resume from last.pt,
ONNX export, both evaluations and the new model recorded in the store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import tomllib

import pytest

from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.formats.model_file import read_model_info
from deepmark.core.inference.detector import default_model_path
from deepmark.core.store import InvalidValueError, Project
from deepmark.core.store.interchange import import_df2
from deepmark.core.studio.retrain import (
    BUNDLED_CHECKPOINT,
    RetrainError,
    RetrainJob,
    RetrainOptions,
    base_checkpoint,
    jobs_root,
    run_config,
    toml_text,
)
from deepmark.core.synthetic import SynthConfig, generate_dataset
from deepmark.core.util.resources import resource_path

# small and fast: the bundled model's checkpoint fine-tuned at 128², a step or two per epoch, no workers
QUICK = RetrainOptions(epochs=3, batch_size=2, max_steps_per_epoch=1, workers=0, val_fraction=0.3, tune_step=0.5,
                       device="cpu", overrides={"data": {"input_size": [128, 128]}})


@pytest.fixture(scope="module")
def garments(tmp_path_factory):
    """14 labelled synthetic images (128²): the first 10 in ``first/``, 4 more in ``more/``."""
    root = tmp_path_factory.mktemp("garments")
    config = SynthConfig(image_size=(128, 128), max_items=2)
    generate_dataset(root / "first", 10, seed=3, config=config)
    generate_dataset(root / "more", 4, seed=4, config=config, start=101)
    return root


@pytest.fixture
def project(tmp_path, garments):
    shutil.copytree(garments, tmp_path / "data")
    with Project.create(tmp_path / "shirts.deepmark", root=tmp_path) as opened:
        import_df2(opened, tmp_path / "data" / "first", status="accepted")
        yield opened


def _stop_if_running(job: RetrainJob) -> None:
    if job.record.pid:
        job.cancel()


# --------------------------------------------------------------------------------------------------
# Fast


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_store_keeps_jobs_and_evaluations(tmp_path, request, backend):
    url = tmp_path / "p.deepmark" if backend == "sqlite" else request.getfixturevalue("pg_server").new_database()
    with Project.create(url, root=tmp_path) as project:
        job = project.training.add(tmp_path / "job", config={"train": {"epochs": 2}})
        assert job.state == "preparing" and job.resumable and project.training.latest_unfinished() == job
        done = project.training.update(job.id, state="done", model_path="m.onnx")
        assert done.finished_at is not None and project.training.latest_unfinished() is None
        with pytest.raises(InvalidValueError, match="state must be one of"):
            project.training.update(job.id, state="nearly")
        evaluation = project.training.add_evaluation("new", "m.onnx", "ab" * 32, [3, 1], {"map_pt": 0.5},
                                                     {"alpha": 0.3}, training_job_id=job.id)
        assert project.training.evaluations(job.id) == [evaluation] and evaluation.image_ids == [3, 1]
        assert project.training.job_of_model("ab" * 32).id == job.id


def test_run_config_is_valid_toml_from_the_current_models_checkpoint(tmp_path):
    info = read_model_info(default_model_path())
    checkpoint = resource_path(*BUNDLED_CHECKPOINT)
    config = run_config(tmp_path / "data", tmp_path / "run", info, checkpoint, RetrainOptions(epochs=8), 5)
    parsed = tomllib.loads(toml_text(config))
    assert parsed == json.loads(json.dumps(config))
    assert parsed["model"]["init"] == str(checkpoint) and parsed["model"]["arch"] == info.arch
    assert parsed["data"]["input_size"] == list(info.input_size)
    assert parsed["train"]["batch_size"] == 5 and parsed["train"]["lr_steps"] == [6]
    # no checkpoint: the documented recipe (resources/models/default.toml) from random weights
    recipe = run_config(tmp_path / "data", tmp_path / "run", info, None, RetrainOptions(), 100)
    assert recipe["model"]["init"] == "" and recipe["train"]["lr"] == 1e-3


def test_base_checkpoint_of_the_bundled_model_and_of_a_model_with_one_beside_it(project, tmp_path):
    from deepmark.core.store.predictions import file_sha256

    bundled = default_model_path()
    assert base_checkpoint(project, bundled, file_sha256(bundled)) == resource_path(*BUNDLED_CHECKPOINT)
    (tmp_path / "other.onnx").write_bytes(b"not the same model")
    assert base_checkpoint(project, tmp_path / "other.onnx", "0" * 64) is None
    (tmp_path / "other.pt").write_bytes(b"x")
    assert base_checkpoint(project, tmp_path / "other.onnx", "0" * 64) == tmp_path / "other.pt"


@pytest.mark.parametrize("accepted", [0, 2])
def test_too_few_accepted_images_is_one_line_and_leaves_nothing(tmp_path, garments, accepted):
    with Project.create(tmp_path / "p.deepmark", root=tmp_path) as project:
        import_df2(project, garments / "first", status="new")
        for image_id in project.images.ids()[:accepted]:
            project.images.set_status(image_id, "accepted")
        with pytest.raises(RetrainError) as caught:
            RetrainJob.start(project, options=QUICK)
        assert "\n" not in str(caught.value) and "accepted" in str(caught.value)
        assert not list(jobs_root(project).glob("*/data"))
        assert project.training.latest_unfinished() is None


def test_split_is_recorded_and_stable_when_images_are_added(project, tmp_path):
    first = RetrainJob.start(project, options=QUICK)
    first.cancel()
    split = first.record.split
    assert first.job_dir == jobs_root(project) / "0001" and jobs_root(project).name == "shirts.deepmark-jobs"
    assert sorted(split["train"] + split["validation"]) == project.images.ids()
    assert split["validation"] and len(split["train"]) >= 2
    names = {p.stem for p in (first.job_dir / "data" / "validation" / "annos").iterdir()}
    assert len(names) == len(split["validation"])
    import_df2(project, tmp_path / "data" / "more", status="accepted")
    second = RetrainJob.start(project, options=QUICK)
    second.cancel()
    grown = second.record.split
    assert set(split["validation"]) <= set(grown["validation"]) and set(split["train"]) <= set(grown["train"])
    assert len(grown["train"]) + len(grown["validation"]) == 14
    assert project.training.get(first.id).split == split  # recorded in the store


def test_a_crash_in_the_training_process_is_one_line(project):
    job = RetrainJob.start(project, options=RetrainOptions(epochs=1, workers=0, overrides={"train": {"device": "tpu"}}))
    state = job.wait(timeout=120, interval=0.2)
    assert state.state == "failed" and not state.running
    assert state.message.startswith("training failed: ") and "\n" not in state.message
    assert "device must be auto, cpu or cuda" in state.message
    assert RetrainJob.interrupted(project) is None  # a failed job is not offered for resuming


def test_a_job_whose_process_died_is_interrupted_and_can_be_discarded(project):
    job = RetrainJob.start(project, options=QUICK)
    os.killpg(job.record.pid, signal.SIGKILL)  # as if the machine went down
    job._process.wait()
    found = RetrainJob.interrupted(project)
    assert found is not None and found.id == job.id and found.state == "training"
    RetrainJob(project, found).discard()
    assert project.training.get(job.id).state == "discarded" and not job.job_dir.exists()
    assert RetrainJob.interrupted(project) is None
    # the training process killed while the job is followed (out of memory...): failed, in one line
    followed = RetrainJob.start(project, options=QUICK)
    os.killpg(followed.record.pid, signal.SIGKILL)
    followed._process.wait()
    state = followed.poll()
    assert state.state == "failed" and "the process was killed (signal 9" in state.message


def test_an_installation_that_cannot_train_says_so_in_one_line(project, monkeypatch):
    monkeypatch.setattr("sys.frozen", True, raising=False)  # a packaged build: no Python, no PyTorch
    with pytest.raises(RetrainError, match="packaged build has no training") as caught:
        RetrainJob.start(project, options=QUICK)
    assert "\n" not in str(caught.value) and project.training.list() == []
    monkeypatch.delattr("sys.frozen")
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "torch" else object())
    with pytest.raises(RetrainError, match=r"deepmark-studio\[train\]"):
        RetrainJob.start(project, options=QUICK)


def test_cancelling_the_export_sets_the_job_aside_and_leaves_no_folder(project):
    from deepmark.core.errors import Cancelled

    def cancel_at_third(done, total):
        if done == 3:
            raise Cancelled("cancelled")

    with pytest.raises(Cancelled):
        RetrainJob.start(project, options=QUICK, progress=cancel_at_third)
    job = project.training.list()[-1]
    assert job.state == "discarded" and not job.job_dir.exists() and RetrainJob.interrupted(project) is None


def test_a_split_without_validation_images_is_refused_in_one_line(project):
    with pytest.raises(RetrainError, match="0 for validation") as caught:
        RetrainJob.start(project, options=RetrainOptions(val_fraction=0.0))
    assert "\n" not in str(caught.value)
    job = project.training.list()[-1]
    assert job.state == "failed" and job.message == str(caught.value) and not (job.job_dir / "data").exists()


def _finishing_job(project, tmp_path) -> RetrainJob:
    """A job whose training ended (as far as the store knows) with no process: what poll / resume meet."""
    job_dir = tmp_path / "job"
    (job_dir / "run").mkdir(parents=True)
    (job_dir / "config.toml").write_text("[data]\n")
    (job_dir / "job.json").write_text(json.dumps({"base_model_path": str(default_model_path())}))
    record = project.training.add(job_dir, config={"train": {"epochs": 1}}, split={"train": [1], "validation": [2]})
    return RetrainJob(project, project.training.update(record.id, state="finishing"))


@pytest.mark.parametrize("result", ["{not json", '{"model": "gone.onnx", "evaluations": []}',
                                    '{"model": "gone.onnx", "checkpoint": "x", "evaluations": '
                                    '[{"label": "new", "params": {"alpha": 7}}, {"label": "current"}]}'])
def test_an_unusable_result_fails_the_job_in_one_line_and_records_nothing(project, tmp_path, result):
    job = _finishing_job(project, tmp_path)
    (job.job_dir / "result.json").write_text(result)
    state = job.poll()
    assert state.state == "failed" and state.message.startswith(f"{job.job_dir / 'result.json'}: unusable result")
    assert "\n" not in state.message
    assert project.model_runs.list() == [] and project.training.evaluations() == []


def test_a_failing_evaluation_process_is_one_line(project, tmp_path):
    job = RetrainJob.resume(project, _finishing_job(project, tmp_path).id)  # no checkpoint in run/
    state = job.wait(timeout=120, interval=0.2)
    assert state.state == "failed" and "\n" not in state.message
    assert state.message.startswith("exporting and evaluating the model failed: ")
    assert "the training left no checkpoint" in state.message


# --------------------------------------------------------------------------------------------------
# Slow: a whole job


@pytest.mark.slow
def test_retrain_job_end_to_end_with_cancel_and_resume(project, tmp_path):
    job = RetrainJob.start(project, options=QUICK)
    assert job.record.state == "training" and job.record.base_checkpoint == str(resource_path(*BUNDLED_CHECKPOINT))
    seen = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        seen.append(job.poll())
        if seen[-1].epoch >= 1 or seen[-1].state != "training":
            break
        time.sleep(0.2)
    assert seen[-1].state == "training" and seen[-1].epoch == 1, seen[-1]
    assert seen[-1].loss is not None and seen[-1].val_map_pt is not None and seen[-1].epochs == 3
    cancelled = job.cancel()
    assert cancelled.state == "cancelled" and (job.run_dir / "last.pt").is_file()
    project_file = project.file
    project.close()

    with Project.open(project_file) as reopened:  # the app restarts
        offered = RetrainJob.interrupted(reopened)
        assert offered is not None and offered.id == job.id
        resumed = RetrainJob.resume(reopened)
        final = resumed.wait(timeout=600, interval=0.5)
        assert final.state == "done", final.message
        assert "resumed from" in (job.run_dir / "train.log").read_text()
        epochs = [json.loads(line)["epoch"] for line in (job.run_dir / "log.jsonl").read_text().splitlines()]
        assert epochs[-1] == 2 and epochs.count(0) == 1  # continued, not restarted
        result = resumed.result()
        assert result.model_path == job.job_dir / "model.onnx"
        info = read_model_info(result.model_path)
        assert info.training["postprocess"] == {k: getattr(result.params, k) for k in info.training["postprocess"]}
        assert isinstance(result.params, PostprocessParams)
        split = resumed.record.split
        for evaluation in (result.current, result.new):
            assert set(evaluation.image_ids) == set(split["validation"])
            assert 0.0 <= evaluation.metrics["map_pt"] <= 1.0 and "per_category_pt" in evaluation.metrics
        assert result.current.model_path == str(default_model_path())
        run = reopened.model_runs.get(result.model_run_id)
        assert run.model_path == str(result.model_path) and run.params == result.new.params
        assert reopened.training.job_of_model(result.new.model_hash).id == job.id
        assert RetrainJob.interrupted(reopened) is None
