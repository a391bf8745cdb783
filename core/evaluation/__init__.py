"""Measuring detections: the official DeepFashion2 protocol through pycocotools, grid search of the
post-processing parameters on cached heads, and the paper's ablation tables."""
