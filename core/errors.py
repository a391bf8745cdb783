"""Exception types raised by ``core`` for bad input. Each message names the file or value at fault."""


class DeepMarkError(Exception):
    """Base class of every error ``core`` raises on bad input."""


class TaxonomyError(DeepMarkError):
    """A taxonomy or grouping file, a category id or a landmark list does not fit the taxonomy."""


class EncodeError(DeepMarkError):
    """Ground-truth items cannot be turned into training targets."""


class DecodeError(DeepMarkError):
    """Raw head arrays or post-processing parameters are unusable."""


class EvaluationError(DeepMarkError):
    """Annotations or predictions cannot be evaluated."""


class HeadsFileError(DeepMarkError):
    """A saved raw-heads file is missing, corrupt or of another format version."""
