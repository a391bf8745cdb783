#!/usr/bin/env bash
# Reproduce the bundled default model from scratch (CPU: about 1.5 hours on 2 cores; resumable —
# rerun the script and training continues from runs/default/last.pt).
#   bash resources/models/make_default_model.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DEEPMARK=${DEEPMARK:-.venv/bin/deepmark}
[ -d data/synth-train/annos ] || $DEEPMARK synth --n 3000 --seed 0 --out data/synth-train
[ -d data/synth-val/annos ] || $DEEPMARK synth --n 300 --seed 1 --out data/synth-val
$DEEPMARK train resources/models/default.toml
$DEEPMARK export-onnx runs/default/best.pt --out resources/models/deepmark-default-fp32.onnx \
    --int8 resources/models/deepmark-default-int8.onnx --calibration data/synth-train --calibration-images 200
