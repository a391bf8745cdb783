#!/usr/bin/env bash
# Reproduce the bundled default model from scratch and measure it (docs/model-card.md).
# CPU: about 2.2 hours of training on 2 cores (20 epochs of ~6.5 min); resumable — rerun and training continues from
# runs/default/last.pt.
#   bash resources/models/make_default_model.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DEEPMARK=${DEEPMARK:-.venv/bin/deepmark}
PYTHON=${PYTHON:-.venv/bin/python}
MODELS=resources/models
[ -d data/synth-train/annos ] || $DEEPMARK synth --n 3000 --seed 0 --out data/synth-train
[ -d data/synth-val/annos ] || $DEEPMARK synth --n 300 --seed 1 --out data/synth-val

# 1. Train (MobileNetV2 CenterNet, 256², semantic62; see default.toml). A fresh checkout continues
#    from the committed checkpoint of the last session's training (delete it to start from scratch).
if [ ! -f runs/default/last.pt ] && [ -f $MODELS/training/default-last.pt ]; then
    mkdir -p runs/default && cp $MODELS/training/default-last.pt runs/default/last.pt
fi
$DEEPMARK train $MODELS/default.toml

# 2. Export fp32 ONNX and the static int8 (QDQ) model calibrated on 200 training images.
$DEEPMARK export-onnx runs/default/best.pt --out $MODELS/deepmark-default-fp32.onnx \
    --int8 $MODELS/deepmark-default-int8.onnx --calibration data/synth-train --calibration-images 200

# 3. Held-out validation (seed 1): raw heads, then the DeepMark++ Table 1 ablation — parameters tuned
#    on half of the images (step 0.05, as the paper), measured on the other half.
for precision in fp32 int8; do
    $DEEPMARK predict data/synth-val/image --out runs/default/val-$precision --heads --quiet \
        --model $MODELS/deepmark-default-$precision.onnx
    $DEEPMARK ablation data/synth-val/annos runs/default/val-$precision/heads --step 0.05 \
        | tee runs/default/ablation-$precision.md
done

# 4. Speed: pre-processing + inference + decode at 256² and 512².
$PYTHON bench/inference.py --models $MODELS/deepmark-default-fp32.onnx $MODELS/deepmark-default-int8.onnx \
    | tee runs/default/speed.md
