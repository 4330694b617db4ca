"""tinct's own error types: problems a user can cause and fix, as opposed to bugs.

Every entry point prints a ``TinctError`` as one line (``tinct: error: ...``) and goes on or
stops as its job requires; any other exception is a bug and keeps its traceback. Each type
also derives from the built-in exception it refines, so ``except ValueError`` around tinct
calls keeps working.

    TinctError             base of them all
      UsageError           a bad argument, config, model name, hint... (a ValueError)
      MissingFileError     a file or folder the user named does not exist (a FileNotFoundError)
      SetupError           the machine lacks something: a package, a CUDA device (a RuntimeError)
      TrainingDiverged     the loss became NaN or infinite (a FloatingPointError)
    ImageError (tinct.imageio) and HintError (tinct.hints) are UsageErrors of their own kind.
"""

from __future__ import annotations

__all__ = ["TinctError", "UsageError", "MissingFileError", "SetupError", "TrainingDiverged"]


class TinctError(Exception):
    """A problem the user can fix; printed as one line."""


class UsageError(TinctError, ValueError):
    """A bad argument, config, model name or value."""


class MissingFileError(TinctError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class SetupError(TinctError, RuntimeError):
    """The machine lacks something tinct needs (a package, a device)."""


class TrainingDiverged(TinctError, FloatingPointError):
    """Training produced a non-finite loss."""
