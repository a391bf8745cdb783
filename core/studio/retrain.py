"""Retrain the detector on the project's accepted images, as a background job that outlives the app (Qt-free).

    job = RetrainJob.start(project, current_model=path, options=RetrainOptions(epochs=10, device="auto"))
    job.poll()          # -> RetrainProgress: phase, epoch, step, loss, validation mAP, time left
    job.wait()          # poll until it ends (headless use: benchmarks, scripts)
    job.cancel()        # stop the training process group; the checkpoint stays, the job can be resumed
    RetrainJob.resume(project)   # after a restart: continues the newest unfinished job from its last.pt
    job.result()        # the current and the new model evaluated on the same held-out images

A job, in its folder ``<project>.deepmark-jobs/<id>/`` (beside the project file):

1. **Data** — the accepted images exported in DeepFashion2 layout (``data/train``, ``data/validation``; the
   store's ``export_dataset``): an image's part is a hash of (seed, its content hash), so it keeps its part
   when the project grows, and the split (image ids per part) is recorded in the store.
2. **Configuration** — ``config.toml``: initialised from the current model's training checkpoint when one is
   found (``base_checkpoint``), with that model's architecture, grouping and input size and a fine-tuning
   learning rate; otherwise the bundled model's recipe (``resources/models/default.toml``: MobileNetV2,
   256×256, semantic62) from random weights.
3. **Training** — ``deepmark train config.toml`` as a separate process in its own process group (CPU or GPU by
   ``device``); progress is read from its run folder (``run/log.jsonl``: one line per epoch with the loss and
   validation mAP; ``run/train.log``: a loss line every 25 steps). Cancel terminates the process group;
   ``run/last.pt`` (written at every epoch end and every ``checkpoint_minutes``) stays, and a resumed job
   continues from it.
4. **Finishing** — ``python -m deepmark.core.studio.retrain_finish`` (another process): ONNX export, post-processing
   tuned on the validation part, the new and the current model evaluated there.
5. **Recording** — the new model as a model run (with its tuned parameters) and both evaluations in the store.

The job's state is in the store (``training_jobs``); a job whose process is gone while the state says it runs
(the app was closed, the machine restarted) is *interrupted*: ``RetrainJob.resume`` continues it. Every failure
is a ``RetrainError`` with one line, or the job's ``message`` (state 'failed'); the project's labels are never
touched.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepmark.core.domain.structures import PostprocessParams
from deepmark.core.errors import Cancelled, DeepMarkError
from deepmark.core.formats.model_file import ModelInfo, read_model_info
from deepmark.core.inference.detector import default_model_path
from deepmark.core.store import Project, StoreError
from deepmark.core.store.exporting import export_dataset, split_of
from deepmark.core.store.predictions import file_sha256
from deepmark.core.store.training import ModelEvaluationRecord, TrainingJobRecord
from deepmark.core.studio.retrain_finish import JOB_FILE, RESULT_FILE
from deepmark.core.util.atomic import write_text_atomically
from deepmark.core.util.duration import format_duration
from deepmark.core.util.resources import resource_path

JOBS_SUFFIX = ".deepmark-jobs"
MIN_TRAIN_IMAGES = 2
MIN_VALIDATION_IMAGES = 1
BUNDLED_CHECKPOINT = ("models", "training", "default-best.pt")
RECIPE = ("models", "default.toml")
STOP_WAIT_S = 10.0  # after SIGTERM, how long the process group gets before SIGKILL
_STEP_LINE = re.compile(r"epoch (\d+), step (\d+): loss ([0-9.eE+-]+|nan|inf)")


class RetrainError(DeepMarkError):
    """A retraining job cannot start, continue or finish (one line, naming the file or the problem)."""


@dataclass(frozen=True)
class RetrainOptions:
    """What the user chooses. ``epochs``; ``device`` auto | cpu | cuda; ``val_fraction`` of the accepted images
    held out (by content hash, with ``seed``); ``batch_size`` (at most the training images); ``lr`` (None: 1e-4
    when fine-tuning a checkpoint, the recipe's 1e-3 from scratch); ``max_steps_per_epoch`` (0 = every image);
    ``workers``: data-loading processes; ``checkpoint_minutes``: how much a cancel can lose at most;
    ``tune_step``: the post-processing grid step; ``overrides``: {section: {key: value}} for the run
    configuration (e.g. a smaller architecture for a test); ``base_checkpoint``: start from this checkpoint
    (None: found from the current model, see ``base_checkpoint``)."""

    epochs: int = 10
    device: str = "auto"
    val_fraction: float = 0.2
    seed: int = 0
    batch_size: int = 16
    lr: float | None = None
    max_steps_per_epoch: int = 0
    workers: int = 2
    checkpoint_minutes: float = 2.0
    tune_step: float = 0.1
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    base_checkpoint: str | None = None


@dataclass(frozen=True)
class RetrainProgress:
    """Where a job stands. ``state``: the store's (preparing, training, finishing, cancelled, done, failed,
    discarded); ``running``: a process works on it now; ``epoch``: epochs finished of ``epochs``; ``step`` of
    ``steps_total`` training steps; ``loss`` the latest mean loss; ``val_map_pt`` / ``val_map_box`` the latest
    validation; ``eta_s`` seconds left in the training (None: not known yet); ``message``: the failure line."""

    job_id: int
    state: str
    running: bool
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps_total: int = 0
    loss: float | None = None
    val_map_pt: float | None = None
    val_map_box: float | None = None
    eta_s: float | None = None
    message: str | None = None

    @property
    def ended(self) -> bool:
        return self.state in ("done", "failed", "discarded", "cancelled") and not self.running

    def describe(self) -> str:
        """One line for a status bar or a log."""
        if self.state == "training":
            parts = [f"epoch {min(self.epoch + 1, self.epochs)}/{self.epochs}",
                     f"step {self.step}/{self.steps_total}"]
            if self.loss is not None:
                parts.append(f"loss {self.loss:.3f}")
            if self.val_map_pt is not None:
                parts.append(f"val mAP_pt {self.val_map_pt:.3f}")
            if self.eta_s is not None:
                parts.append(f"{format_duration(self.eta_s)} left")
            return "training: " + ", ".join(parts) + ("" if self.running else " (interrupted)")
        return {"preparing": "exporting the accepted images…",
                "finishing": "exporting, tuning and evaluating the new model…",
                "cancelled": f"cancelled after {self.epoch} of {self.epochs} epochs (can be resumed)",
                "done": "finished", "discarded": "discarded",
                "failed": f"failed: {self.message}"}.get(self.state, self.state)


@dataclass(frozen=True)
class RetrainResult:
    """The finished job's new model (``model_path``, its tuned ``params``) and the two evaluations on the same
    held-out images."""

    job_id: int
    model_path: Path
    params: PostprocessParams
    current: ModelEvaluationRecord
    new: ModelEvaluationRecord
    model_run_id: int | None


# --------------------------------------------------------------------------------------------------
# Where things are


def jobs_root(project: Project) -> Path:
    """The folder holding a project's jobs: ``<project file>.deepmark-jobs`` beside a SQLite project (its
    suffix replaced), ``<root>/deepmark-jobs`` for a server database."""
    if project.file is not None:
        return project.file.with_name(project.file.stem + JOBS_SUFFIX)
    return project.root / JOBS_SUFFIX.lstrip(".")


def base_checkpoint(project: Project, model_path: Path, model_hash: str) -> Path | None:
    """The training checkpoint of the model in use, when one is found: the job of this project that produced
    it (its run's best.pt), ``<model>.pt`` beside the model file, or, for the bundled model, its training run's
    ``default-best.pt``; None otherwise (the job trains the recipe from random weights)."""
    job = project.training.job_of_model(model_hash)
    candidates = [job.job_dir / "run" / "best.pt" if job is not None else None, model_path.with_suffix(".pt")]
    if model_hash == _bundled_hash():
        candidates.append(resource_path(*BUNDLED_CHECKPOINT))
    return next((c for c in candidates if c is not None and c.is_file()), None)


_BUNDLED_HASH: list[str] = []


def _bundled_hash() -> str:
    if not _BUNDLED_HASH:
        path = default_model_path()
        _BUNDLED_HASH.append(file_sha256(path) if path.is_file() else "")
    return _BUNDLED_HASH[0]


def planned_split(project: Project, val_fraction: float = 0.2, seed: int = 0) -> tuple[int, int]:
    """(training, validation) counts of the accepted images as a job would split them (before the export
    leaves out images without labels that are not marked 'no garments')."""
    counts = {"train": 0, "validation": 0}
    after = 0
    while page := project.images.page(("accepted",), after_id=after, limit=2000):
        for image in page:
            counts[split_of(image.content_hash or image.path, seed, val_fraction)] += 1
        after = page[-1].id
    return counts["train"], counts["validation"]


# --------------------------------------------------------------------------------------------------
# The run configuration


def run_config(data_dir: Path, run_dir: Path, info: ModelInfo | None, checkpoint: Path | None,
               options: RetrainOptions, train_images: int) -> dict[str, dict[str, Any]]:
    """The job's run configuration (TOML sections as dicts). From a checkpoint: the current model's
    architecture, grouping, input size and head width, ``lr`` 1e-4 (fine-tuning), dropped ×0.1 at 3/4 of the
    epochs. Without one: the bundled model's recipe (``resources/models/default.toml``) from random weights.
    ``options.overrides`` last."""
    import tomllib

    recipe = tomllib.loads(resource_path(*RECIPE).read_text(encoding="utf-8"))
    epochs = options.epochs
    config = {
        "data": {"input_size": recipe["data"]["input_size"], "grouping": recipe["data"]["grouping"]},
        "model": {"arch": recipe["model"]["arch"], "head_conv": recipe["model"]["head_conv"], "init": ""},
        "train": {"lr": recipe["train"]["lr"]},
        "augment": dict(recipe.get("augment", {})),
    }
    if checkpoint is not None and info is not None:
        trained = ((info.training or {}).get("config") or {}).get("model") or {}
        config["data"].update(input_size=list(info.input_size), grouping=info.grouping_name)
        config["model"].update(arch=info.arch, head_conv=int(trained.get("head_conv", 64)), init=str(checkpoint))
        config["train"]["lr"] = 1e-4
    config["data"].update(train=str(data_dir / "train"), val=str(data_dir / "validation"))
    config["train"].update(
        lr=options.lr if options.lr is not None else config["train"]["lr"], epochs=epochs,
        lr_steps=[max(1, math.ceil(0.75 * epochs))] if epochs > 1 else [], lr_factor=0.1,
        batch_size=max(1, min(options.batch_size, train_images)), workers=options.workers, seed=options.seed,
        device=options.device, checkpoint_minutes=options.checkpoint_minutes, val_every=1, val_images=0,
        max_steps_per_epoch=options.max_steps_per_epoch)
    config["output"] = {"run_dir": str(run_dir)}
    for section, values in options.overrides.items():
        config.setdefault(section, {}).update(values)
    return config


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string: JSON's escapes are TOML's


def toml_text(config: dict[str, dict[str, Any]]) -> str:
    """``config`` as TOML (tables of scalars and lists only)."""
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Processes


def training_unavailable() -> str | None:
    """Why this installation cannot train (one line), or None: a frozen build has neither a Python to run
    ``deepmark train`` with nor PyTorch, and a plain install may lack the ``train`` extra."""
    if getattr(sys, "frozen", False):
        return ("retraining needs DeepMark Studio installed with Python and PyTorch (pip install "
                "'deepmark-studio[train]'); this packaged build has no training")
    if importlib.util.find_spec("torch") is None:
        return ("retraining needs PyTorch, which this installation lacks: pip install 'deepmark-studio[train]'")
    return None


def _pid_alive(pid: int | None) -> bool:
    """True while process ``pid`` runs and is one of ours (a number reused by another program after a
    restart is not)."""
    if not pid:
        return False
    if os.name == "nt":
        return _windows_pid_alive(pid)
    cmdline = Path(f"/proc/{pid}/cmdline")
    if Path("/proc/self").exists():
        try:
            if b"deepmark" not in cmdline.read_bytes():
                return False
        except OSError:
            return False
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # our own child that ended: reap it, or it looks alive
        if waited == pid:
            return False
    except ChildProcessError:
        pass  # not our child (the app that started it was closed): ask the system
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _windows_pid_alive(pid: int) -> bool:
    """Windows: ``os.kill(pid, 0)`` would send CTRL+C there, so ask tasklist."""
    listed = subprocess.run(["tasklist", "/FI", f"PID eq {pid}", "/NH"], capture_output=True, text=True,
                            check=False)
    return str(pid) in listed.stdout


def _launch(args: list[str], job_dir: Path, name: str) -> subprocess.Popen:
    """Start ``python -m ...`` in the job folder in a process group of its own (cancel stops it and its
    data-loading workers at once), its output in ``<name>.out`` / ``<name>.err``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with (job_dir / f"{name}.out").open("ab") as out, (job_dir / f"{name}.err").open("wb") as err:
        group = ({"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt"
                 else {"start_new_session": True})
        return subprocess.Popen([sys.executable, "-m", *args], cwd=job_dir, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, env=env, **group)


def _stop(pid: int) -> None:
    """Terminate the process group ``pid`` leads; SIGKILL when it has not ended after ``STOP_WAIT_S``."""
    if os.name == "nt":
        subprocess.run(["taskkill", "/PID", str(pid), "/T", "/F"], capture_output=True, check=False)
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + STOP_WAIT_S
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _pid_alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while _pid_alive(pid) and time.monotonic() < deadline + STOP_WAIT_S:
            time.sleep(0.05)


def failure_line(err_file: Path, what: str, returncode: int | None = None) -> str:
    """The one line saying why a job's process failed: its last ``error:`` line, else its last line, else how
    it ended (killed by a signal: e.g. out of memory)."""
    try:
        lines = [ln.strip() for ln in err_file.read_text(encoding="utf-8", errors="replace").splitlines()
                 if ln.strip()]
    except OSError:
        lines = []
    errors = [ln.removeprefix("error:").strip() for ln in lines if ln.startswith("error:")]
    if errors or lines:
        detail = errors[-1] if errors else lines[-1]
    elif returncode is not None and returncode < 0:
        detail = f"the process was killed (signal {-returncode}; out of memory?)"
    else:
        detail = "the process ended without a message" + (f" (status {returncode})" if returncode else "")
    return f"{what} failed: {detail[:500]} (details: {err_file})"


# --------------------------------------------------------------------------------------------------
# Progress from the run folder


def _epoch_records(run_dir: Path) -> list[dict]:
    try:
        text = (run_dir / "log.jsonl").read_text(encoding="utf-8")
    except OSError:
        return []
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line being written
    return records


def _last_step_line(run_dir: Path) -> tuple[int, int, float] | None:
    """(epoch, step, loss) of the last loss line in train.log (every 25 steps), or None."""
    try:
        with (run_dir / "train.log").open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16384))
            tail = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    found = _STEP_LINE.findall(tail)
    if not found:
        return None
    epoch, step, loss = found[-1]
    return int(epoch), int(step), float(loss)


# --------------------------------------------------------------------------------------------------
# The job


class RetrainJob:
    """One retraining job of a project (see the module docstring). Use ``start`` or ``resume``."""

    def __init__(self, project: Project, record: TrainingJobRecord) -> None:
        self.project = project
        self.record = record
        self._process: subprocess.Popen | None = None
        self._phase_started: tuple[float, int] | None = None  # (monotonic time, global step) at launch

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def job_dir(self) -> Path:
        return self.record.job_dir

    @property
    def run_dir(self) -> Path:
        return self.job_dir / "run"

    # -- starting ----------------------------------------------------------------------------------

    @classmethod
    def start(cls, project: Project, current_model: str | Path | None = None,
              options: RetrainOptions | None = None, *, root: str | Path | None = None,
              progress: Callable[[int, int], object] | None = None) -> RetrainJob:
        """Export the accepted images, write the run configuration and start ``deepmark train``.
        ``current_model``: the model in use (None: the bundled one); it gives the starting checkpoint and is
        evaluated beside the new model. ``root``: where job folders go (default ``jobs_root``).
        ``progress(done, total)`` follows the export. RetrainError (one line) when there are too few accepted
        images or the model or folder cannot be used; the job is then recorded as failed, nothing else
        changes."""
        options = options or RetrainOptions()
        unavailable = training_unavailable()
        if unavailable is not None:
            raise RetrainError(unavailable)
        if project.read_only is not None:
            raise RetrainError(f"{project.where}: cannot retrain: the project can only be read ({project.read_only})")
        accepted = project.images.count(("accepted",))
        if accepted < MIN_TRAIN_IMAGES + MIN_VALIDATION_IMAGES:
            raise RetrainError(f"{project.where}: {accepted} accepted image(s); retraining needs at least "
                               f"{MIN_TRAIN_IMAGES + MIN_VALIDATION_IMAGES} (accept the images you corrected)")
        model_path = Path(current_model).expanduser().resolve() if current_model else default_model_path()
        try:
            info = read_model_info(model_path)
            model_hash = file_sha256(model_path)
        except DeepMarkError as exc:
            raise RetrainError(f"cannot retrain from the current model: {exc}", path=model_path) from None
        checkpoint = (Path(options.base_checkpoint) if options.base_checkpoint
                      else base_checkpoint(project, model_path, model_hash))
        if checkpoint is not None and not checkpoint.is_file():
            raise RetrainError(f"{checkpoint}: checkpoint not found", path=checkpoint)
        root = Path(root) if root is not None else jobs_root(project)
        record = project.training.add("", base_model_path=str(model_path), base_model_hash=model_hash,
                                      base_checkpoint=None if checkpoint is None else str(checkpoint))
        job_dir = root / f"{record.id:04d}"
        job = cls(project, project.training.update(record.id, job_dir=str(job_dir)))
        try:
            job._prepare(info, checkpoint, options, progress)
        except Cancelled:
            shutil.rmtree(job_dir, ignore_errors=True)
            job._set(state="discarded", message="cancelled while exporting the images", pid=None)
            raise
        except (DeepMarkError, OSError) as exc:
            message = str(exc) if isinstance(exc, DeepMarkError) else f"{exc.filename}: {exc.strerror or exc}"
            job._set(state="failed", message=message, pid=None)
            raise RetrainError(message) from None
        job._launch_training()
        return job

    def _prepare(self, info: ModelInfo, checkpoint: Path | None, options: RetrainOptions,
                 progress: Callable[[int, int], object] | None) -> None:
        """Export the data, record the split, write config.toml and job.json."""
        self.job_dir.mkdir(parents=True, exist_ok=True)
        data = self.job_dir / "data"
        report = export_dataset(self.project, data, statuses=("accepted",), val_fraction=options.val_fraction,
                                seed=options.seed, images="hardlink", coco=False, overwrite=True, progress=progress)
        manifest = json.loads((data / "export.json").read_text(encoding="utf-8"))
        split = {"train": [e["image_id"] for e in manifest["splits"]["train"]],
                 "validation": [e["image_id"] for e in manifest["splits"]["validation"]],
                 "by": "sha256(seed:content hash) < val_fraction", "seed": options.seed,
                 "val_fraction": options.val_fraction, "skipped": [str(e) for e in report.errors]}
        self._set(split=split)
        n_train, n_val = len(split["train"]), len(split["validation"])
        if n_train < MIN_TRAIN_IMAGES or n_val < MIN_VALIDATION_IMAGES:
            shutil.rmtree(data, ignore_errors=True)
            raise RetrainError(f"{self.project.where}: too few accepted images with labels: {n_train} for training, "
                               f"{n_val} for validation (need at least {MIN_TRAIN_IMAGES} and "
                               f"{MIN_VALIDATION_IMAGES}; {len(report.errors)} skipped)")
        config = run_config(data, self.run_dir, info, checkpoint, options, n_train)
        write_text_atomically(self.job_dir / "config.toml", toml_text(config))
        write_text_atomically(self.job_dir / JOB_FILE, json.dumps({
            "base_model_path": self.record.base_model_path, "tune_step": options.tune_step,
            "training_data": (f"{n_train} accepted images of {self.project.where}, from "
                              f"{Path(self.record.base_model_path or '').name or 'random weights'}"
                              if checkpoint is not None else f"{n_train} accepted images of {self.project.where}")},
            indent=1))
        self._set(config=config)

    # -- resuming ----------------------------------------------------------------------------------

    @classmethod
    def interrupted(cls, project: Project) -> TrainingJobRecord | None:
        """The newest job that has not ended and has no process working on it (the app was closed while it
        ran, or it was cancelled); None when there is none. What reopening a project offers to resume."""
        record = project.training.latest_unfinished()
        if record is None or _pid_alive(record.pid):
            return None
        return record

    @classmethod
    def attach(cls, project: Project, job_id: int | None = None) -> RetrainJob | None:
        """The job (default: the newest unfinished one) as it is, without starting anything: to follow a job
        whose process still runs (started by another window or script)."""
        record = project.training.get(job_id) if job_id is not None else project.training.latest_unfinished()
        return None if record is None else cls(project, record)

    @classmethod
    def resume(cls, project: Project, job_id: int | None = None) -> RetrainJob:
        """Continue a job that has not ended (default: the newest): its training from ``run/last.pt``, or its
        finishing; a job whose process still runs is only followed. RetrainError when there is none."""
        record = project.training.get(job_id) if job_id is not None else project.training.latest_unfinished()
        if record is None or not record.resumable:
            what = f"training job {job_id}" if job_id is not None else "no unfinished training job"
            raise RetrainError(f"{project.where}: {what} to resume"
                               + (f" (it is {record.state})" if record is not None else ""))
        job = cls(project, record)
        if _pid_alive(record.pid):
            return job
        unavailable = training_unavailable()
        if unavailable is not None:
            raise RetrainError(unavailable)
        if not (job.job_dir / "config.toml").is_file():
            why = ("was interrupted while exporting its images; start a new job" if record.state == "preparing"
                   else "is gone or incomplete")
            job._set(state="failed", message=f"{job.job_dir}: the job folder {why}", pid=None)
            raise RetrainError(job.record.message or "")
        if (job.job_dir / RESULT_FILE).is_file():
            job._set(state="finishing", pid=None)
            job.poll()
        elif record.state == "finishing" or job._training_complete():
            job._launch_finishing()
        else:
            job._launch_training()
        return job

    # -- phases --------------------------------------------------------------------------------------

    def _set(self, **values: Any) -> None:
        self.record = self.project.training.update(self.id, **values)

    def _launch_training(self) -> None:
        self._process = _launch(["deepmark.core.cli.main", "train", "config.toml", "--quiet"], self.job_dir, "train")
        self._phase_started = (time.monotonic(), self._global_step())
        self._set(state="training", pid=self._process.pid, message=None)

    def _launch_finishing(self) -> None:
        (self.job_dir / RESULT_FILE).unlink(missing_ok=True)
        self._process = _launch(["deepmark.core.studio.retrain_finish", str(self.job_dir)], self.job_dir, "finish")
        self._set(state="finishing", pid=self._process.pid, message=None)

    def _epochs(self) -> int:
        return int(((self.record.config or {}).get("train") or {}).get("epochs", 0))

    def _training_complete(self) -> bool:
        records = _epoch_records(self.run_dir)
        return bool(records) and int(records[-1].get("epoch", -1)) + 1 >= self._epochs()

    def _global_step(self) -> int:
        records = _epoch_records(self.run_dir)
        line = _last_step_line(self.run_dir)
        steps = ([int(records[-1]["step"])] if records else []) + ([line[1]] if line else [])
        return max(steps, default=0)

    def _returncode(self) -> int | None:
        return self._process.returncode if self._process is not None else None

    def _running(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        return _pid_alive(self.record.pid)

    # -- following -------------------------------------------------------------------------------------

    def poll(self) -> RetrainProgress:
        """Where the job stands now; moves it on when its process has ended: training done → finishing;
        finishing done → recorded in the store ('done'); a process that failed → 'failed' with its error line.
        Cheap (reads the run folder's logs): call it from a timer."""
        self.record = self.project.training.get(self.id)
        running = self._running()
        if not running and self.record.state == "training":
            if self._training_complete():
                self._launch_finishing()
                running = True
            else:
                self._set(state="failed", pid=None,
                          message=failure_line(self.job_dir / "train.err", "training", self._returncode()))
        elif not running and self.record.state == "finishing":
            if (self.job_dir / RESULT_FILE).is_file():
                self._record_result()
            else:
                self._set(state="failed", pid=None, message=failure_line(
                    self.job_dir / "finish.err", "exporting and evaluating the model", self._returncode()))
        return self.progress(running)

    def progress(self, running: bool | None = None) -> RetrainProgress:
        """The job's progress from its state and run folder, without moving it on."""
        running = self._running() if running is None else running
        records = _epoch_records(self.run_dir)
        config = self.record.config or {}
        epochs = self._epochs()
        steps_per_epoch = self._steps_per_epoch(config)
        last = records[-1] if records else {}
        validated = [r for r in records if r.get("val_map_pt") is not None]
        step, loss = int(last.get("step", 0)), last.get("loss")
        line = _last_step_line(self.run_dir)
        if line is not None and line[1] > step:
            step, loss = line[1], line[2]
        steps_total = epochs * steps_per_epoch
        return RetrainProgress(
            self.id, self.record.state, running, epoch=int(last.get("epoch", -1)) + 1,
            epochs=epochs, step=step, steps_total=steps_total, loss=loss,
            val_map_pt=validated[-1]["val_map_pt"] if validated else None,
            val_map_box=validated[-1]["val_map_box"] if validated else None,
            eta_s=self._eta(step, steps_total) if running and self.record.state == "training" else None,
            message=self.record.message)

    def _steps_per_epoch(self, config: dict) -> int:
        train = config.get("train") or {}
        images = len((self.record.split or {}).get("train", []))
        steps = math.ceil(images / max(1, int(train.get("batch_size", 1))))
        limit = int(train.get("max_steps_per_epoch", 0))
        return min(steps, limit) if limit else steps

    def _eta(self, step: int, total: int) -> float | None:
        """Seconds left at the rate since this process started (None until it has made a step)."""
        if self._phase_started is None:
            return None
        started, first = self._phase_started
        done = step - first
        if done <= 0:
            return None
        return (time.monotonic() - started) / done * max(0, total - step)

    def wait(self, timeout: float | None = None, interval: float = 1.0,
             progress: Callable[[RetrainProgress], object] | None = None) -> RetrainProgress:
        """Poll until the job ends (done, failed, cancelled) or ``timeout`` seconds pass; the last progress."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self.poll()
            if progress is not None:
                progress(state)
            if state.ended or (deadline is not None and time.monotonic() >= deadline):
                return state
            time.sleep(interval)

    def cancel(self) -> RetrainProgress:
        """Stop the job's process group (training keeps its last checkpoint; a resume continues from it);
        state 'cancelled'. Nothing happens to a job that has ended."""
        self.record = self.project.training.get(self.id)
        if self.record.state in ("done", "failed", "discarded"):
            return self.progress(False)
        if self.record.pid:
            _stop(self.record.pid)
        if self._process is not None:
            self._process.wait()
            self._process = None
        self._set(state="cancelled", pid=None)
        return self.progress(False)

    def discard(self, delete_files: bool = True) -> None:
        """Stop the job if it runs and set it aside ('discarded'); its folder is deleted with ``delete_files``
        (a model it produced and recorded stays)."""
        self.cancel()
        if delete_files and self.record.model_path is None:
            shutil.rmtree(self.job_dir, ignore_errors=True)
        self._set(state="discarded", pid=None)

    # -- the end ---------------------------------------------------------------------------------------

    def _record_result(self) -> None:
        """Read result.json and record the new model (a model run with its tuned parameters) and both
        evaluations; state 'done'. A result that cannot be used fails the job with one line."""
        path = self.job_dir / RESULT_FILE
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
            evaluations = {e["label"]: e for e in result["evaluations"]}
            new, current = evaluations["new"], evaluations["current"]
            PostprocessParams.from_mapping(new["params"], source=str(path))
            if not Path(result["model"]).is_file():
                raise RetrainError(f"{result['model']}: the new model file is missing", path=result["model"])
        except (OSError, ValueError, KeyError, TypeError, DeepMarkError) as exc:
            self._set(state="failed", pid=None, message=f"{path}: unusable result ({exc})")
            return
        try:
            run = self.project.model_runs.add(f"retrained (job {self.id})", model_path=result["model"],
                                              model_hash=new["model_hash"], params=new["params"],
                                              model_meta={"training_job": self.id, "checkpoint": result["checkpoint"]})
            for entry in (current, new):
                self.project.training.add_evaluation(entry["label"], entry["model_path"], entry["model_hash"],
                                                     entry["image_ids"], entry["metrics"], entry["params"],
                                                     training_job_id=self.id)
        except StoreError as exc:
            self._set(state="failed", pid=None, message=f"the result could not be recorded: {exc}")
            return
        self._set(state="done", pid=None, model_path=result["model"], model_run_id=run.id)

    def result(self) -> RetrainResult:
        """The finished job's models and evaluations; RetrainError when it has not finished."""
        self.record = self.project.training.get(self.id)
        if self.record.state != "done" or self.record.model_path is None:
            raise RetrainError(f"training job {self.id} has not finished (it is {self.record.state})")
        evaluations = {e.label: e for e in self.project.training.evaluations(self.id)}
        new = evaluations["new"]
        params = PostprocessParams.from_mapping(new.params or {}, PostprocessParams.all_techniques())
        return RetrainResult(self.id, Path(self.record.model_path), params, evaluations["current"], new,
                             self.record.model_run_id)

