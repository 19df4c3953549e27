"""The samdata error hierarchy.

Every error the project raises on purpose derives from :class:`SamdataError`; each subclass also
inherits the matching built-in so callers can catch either (``except FileNotFoundError`` works).
Messages name the bad value, the file and what was expected.
"""

from __future__ import annotations


class SamdataError(Exception):
    """Base class of every deliberate samdata error."""


class InputFileError(SamdataError, ValueError):
    """An input file is unreadable, corrupt, or not what its extension says."""


class CaseNotFoundError(SamdataError, FileNotFoundError):
    """A file, case or folder that was asked for does not exist."""


class ValidationError(SamdataError, ValueError):
    """Input data is readable but violates a requirement (shape, labels, values)."""


class ConfigError(SamdataError, ValueError):
    """A configuration value, spec string or CLI option is malformed or unknown."""


class StoreError(SamdataError, RuntimeError):
    """The slice store is missing, inconsistent, or a transaction failed."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """No store at the given location."""


class SnapshotNotFoundError(StoreError, LookupError):
    """A snapshot id, branch or tag does not exist in the store."""


class TrainingError(SamdataError, RuntimeError):
    """A training run cannot go on: a non-finite loss or gradient, or processes that disagree."""


class RegistryError(ConfigError, KeyError):
    """An unknown name was asked of a plug-in registry; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


def unknown_name(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> RegistryError:
    """Build the standard error for an unknown registry name, listing the valid ones."""
    return RegistryError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(sorted(valid))}")
