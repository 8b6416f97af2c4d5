"""Warning classes of the package."""

__all__ = ["PIAAWarning", "UndefinedSROCCWarning"]


class PIAAWarning(UserWarning):
    """Something the user should know about their data or settings."""


class UndefinedSROCCWarning(PIAAWarning, RuntimeWarning):
    """A Spearman correlation was undefined (constant ratings or predictions)."""
