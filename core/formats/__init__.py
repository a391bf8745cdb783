"""File formats, read and written with every input checked: DeepFashion2 annotation and result files, the
294-keypoint COCO json, the raw-heads file, and the self-describing ONNX model file's metadata."""
