"""Running a model file: the onnxruntime detector (pre-processing, flip / multi-scale) and batch
prediction of image folders. No torch."""
