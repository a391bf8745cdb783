"""DeepMark Studio's library (no Qt anywhere below), one folder per concern, lowest layer first:

- ``util`` — generic helpers: atomic file writes, an LRU mapping, the bundled resources;
- ``domain`` — the vocabulary: the DeepFashion2 taxonomy and the typed values (Item, Detection, RawHeads,
  PostprocessParams, Affine);
- ``formats`` — files: DeepFashion2 and COCO json, the raw-heads file, the self-describing model file;
- ``imaging`` — reading images and the letterbox pre-processing shared by training and inference;
- ``centernet`` — the CenterNet algorithm: targets (encode), peaks, decode with the DeepMark++ techniques, NMS;
- ``store`` — the annotation database and its DeepFashion2 / COCO import and export;
- ``evaluation`` — the DeepFashion2 protocol, grid search, ablation;
- ``inference`` — the onnxruntime detector and batch prediction;
- ``synthetic`` — synthetic garments and simulated heads;
- ``training`` — torch: models, dataset, losses, the training loop, ONNX export;
- ``studio`` — the app's Qt-free services: heads caches, live model, batch jobs, tuning, review, thumbnails;
- ``cli`` — the ``deepmark`` command.

The layers are checked by import-linter (``[tool.importlinter]`` in ``pyproject.toml``).
"""

__version__ = "0.1.0"
