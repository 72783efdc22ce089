"""The errors a user can cause, and how the command line reports them.

Every error the ``zubovnet`` command expects — a bad config value, a missing file or dataset,
a locked or non-empty run folder, a model that a suite does not apply to, an ODE solve that
fails — is printed as **one line** on stderr (``error: …``) with exit status 2; ``--debug``
shows the traceback instead.  Anything else is a bug and keeps its traceback.
``docs/errors.md`` lists each error with what to do.
"""
from __future__ import annotations

__all__ = ["ZubovnetError", "RunFolderError", "SuiteNotApplicableError", "expected_errors"]


class ZubovnetError(Exception):
    """Base of the package's own user-facing errors."""


class RunFolderError(ZubovnetError):
    """A run folder that cannot be written: locked by another process, or not empty without
    ``--resume`` / ``--overwrite``."""


class SuiteNotApplicableError(ZubovnetError, TypeError):
    """An evaluation suite asked for a model it does not apply to (``certify`` on a model
    without a Lyapunov head)."""


def expected_errors() -> tuple[type[BaseException], ...]:
    """The exception types the command line turns into one-line errors."""
    from .config import ConfigError
    from .models import StepSizeUnderflowError
    out: list[type[BaseException]] = [ZubovnetError, ConfigError, StepSizeUnderflowError,
                                      OSError, ValueError, KeyError]
    from .data import DatasetNotFoundError
    out.append(DatasetNotFoundError)
    from .analysis.alignment import AlignmentError
    from .analysis.certify import UnsupportedLayerError
    out += [AlignmentError, UnsupportedLayerError]
    return tuple(out)
