"""DeepMark Studio's library: taxonomy, CenterNet encoding/decoding, evaluation, tuning. No Qt here."""

__version__ = "0.1.0"
