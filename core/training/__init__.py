"""Training (torch, imported only here): the models, the dataset and augmentation, losses, the run
configuration, the resumable training loop and ONNX export."""
