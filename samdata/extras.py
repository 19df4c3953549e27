"""Optional dependencies: a clear error naming the extra to install when one is missing.

Heavy packages used for one thing each are extras of the distribution (``pyproject.toml``):
``sample`` (nilearn: the MNI152 sample data), ``medigan`` (medigan packages), ``flows`` (Prefect and
prefect-dask: flows, schedules, the demo), ``tensorboard`` and ``seg`` (pynrrd, pydicom, highdicom: predicted
masks as 3D Slicer ``.seg.nrrd`` and DICOM-SEG); ``all`` installs every one.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from samdata.errors import ConfigError


class MissingExtraError(ConfigError, ImportError):
    """An optional dependency is not installed; the message names the ``pip install`` that adds it."""


def check_installed(module: str, extra: str, what: str) -> None:
    """Raise MissingExtraError unless ``module`` can be found, without importing it (Prefect reads its
    settings when imported: the CLI sets them first)."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MissingExtraError(
            f"{what} needs the optional package {module!r}, which is not installed: "
            f"pip install 'samdata[{extra}]' (or 'samdata[all]')"
        )


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module``, or raise MissingExtraError saying ``what`` needs ``pip install 'samdata[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(
            f"{what} needs the optional package {module.split('.')[0]!r}, which is not "
            f"installed: pip install 'samdata[{extra}]' (or 'samdata[all]')"
        ) from err
