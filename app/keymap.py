"""The keymap: every action's default keys in one table, and the user's own keys from the settings file.

Defaults follow what annotators bring from labelme, labelImg and X-AnyLabeling: A / D for the previous /
next image, W (labelImg) and R (X-AnyLabeling) to draw a box, Space to accept an image (labelImg's
"verify"); review keys that do not collide with those take modifiers (Shift+R reject, Shift+S skip).

A user changes a key in the settings file (``deepmark.app.settings``), section ``[keys]``, one line per
action id, several keys separated by ``;``::

    [keys]
    review.accept=Return
    image.next=D;Right

An empty value removes an action's keys; an id or key the app does not know is ignored (and reported once
in the status bar). F1 lists the keys in force.
"""

from __future__ import annotations

from PySide6.QtGui import QKeySequence

# action id → default keys (Qt's portable key names; a StandardKey name in angle brackets)
DEFAULT_KEYS: dict[str, tuple[str, ...]] = {
    "file.new": ("<New>",),
    "file.open": ("<Open>",),
    "file.add_folder": ("Ctrl+Shift+O",),
    "file.add_images": ("Ctrl+I",),
    "file.import": ("Ctrl+Shift+I",),
    "file.export": ("Ctrl+E",),
    "file.quit": ("Ctrl+Q",),
    "model.choose": ("Ctrl+M",),
    "model.run_current": ("Ctrl+R",),
    "model.run_selected": ("Ctrl+Shift+R",),
    "model.run_all": ("Ctrl+Alt+R",),
    "model.info": ("Ctrl+Shift+M",),
    "model.choose_refiner": (),
    "model.refine": ("Shift+F",),
    "model.retrain": ("Ctrl+Shift+T",),
    "view.before_refinement": ("Shift+B",),
    "edit.undo": ("<Undo>",),
    "edit.redo": ("<Redo>", "Ctrl+Y"),
    "edit.draw": ("W", "R", "B"),
    "edit.category": ("C",),
    "landmark.visible": ("V",),
    "landmark.occluded": ("O",),
    "landmark.absent": ("X",),
    "edit.garment_at_cursor": ("G",),
    "edit.snap": ("P",),
    "edit.refit": ("T",),
    "edit.refit_after_fix": ("Shift+T",),
    "view.fit": ("F",),
    "view.actual": ("1",),
    "view.zoom_in": ("<ZoomIn>", "Ctrl+="),
    "view.zoom_out": ("<ZoomOut>",),
    "view.labels": ("L",),
    "view.detections": ("Shift+D",),
    "view.all_classes": ("Shift+A",),
    "view.heatmap": ("H",),
    "view.side_by_side": ("Shift+H",),
    "view.tuning": ("Ctrl+T",),
    "view.reset_layout": (),
    "image.previous": ("A", "PgUp"),
    "image.next": ("D", "PgDown"),
    "image.next_unreviewed": ("U",),
    "image.previous_unreviewed": ("Shift+U",),
    "review.accept": ("Space",),
    "review.reject": ("Shift+R",),
    "review.skip": ("Shift+S",),
    "review.no_garments": ("Shift+E",),
    "review.accept_all_predictions": ("Shift+Return",),
    "review.summary": ("F9",),
    "view.review_by_doubt": ("Ctrl+Shift+U",),
    "review.mistakes": ("Shift+F9",),
    "review.next_mistake": ("M",),
    "review.previous_mistake": ("Shift+M",),
    "help.shortcuts": ("F1",),
}
SECTION = "keys"


def _sequence(name: str) -> QKeySequence:
    if name.startswith("<") and name.endswith(">"):
        return QKeySequence(getattr(QKeySequence.StandardKey, name[1:-1]))
    return QKeySequence(name)


def default_sequences(action_id: str) -> list[QKeySequence]:
    return [_sequence(k) for k in DEFAULT_KEYS[action_id]]


def parse_keys(text: str) -> list[QKeySequence] | None:
    """A settings value (``"D;Right"``) as key sequences; None when any part is not a key."""
    sequences = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        sequence = QKeySequence(part)
        if sequence.isEmpty() or sequence.toString() == "":
            return None
        sequences.append(sequence)
    return sequences


def user_keys(settings) -> tuple[dict[str, list[QKeySequence]], list[str]]:
    """(action id → keys the user set in ``settings``' [keys] section, problems: one line each)."""
    found: dict[str, list[QKeySequence]] = {}
    problems: list[str] = []
    settings.beginGroup(SECTION)
    try:
        for action_id in settings.childKeys():
            value = settings.value(action_id)
            text = ";".join(value) if isinstance(value, list) else str(value if value is not None else "")
            if action_id not in DEFAULT_KEYS:
                problems.append(f"[keys] {action_id}: no such action (ignored)")
                continue
            sequences = parse_keys(text)
            if sequences is None:
                problems.append(f"[keys] {action_id}={text}: not a key (the default is kept)")
                continue
            found[action_id] = sequences
    finally:
        settings.endGroup()
    return found, problems
