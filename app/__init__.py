"""DeepMark Studio's Qt GUI (PySide6). Only wiring: every answer comes from ``core``."""
