"""The CenterNet algorithm with DeepMark++'s post-processing, in numpy: training targets (``encode``),
peak finding (``peaks``) and raw heads → detections (``decode``, NMS included)."""
