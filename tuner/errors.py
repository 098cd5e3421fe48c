"""Errors a user can cause and fix; kept free of heavy imports so the CLI can catch them cheaply."""


class SearchError(RuntimeError):
    """The search cannot start as asked (name taken, nothing to resume, ...)."""


class FinalizeError(RuntimeError):
    """Finalize cannot run as asked; the message says why and what to do."""


class TrackingError(ValueError):
    """The tracking URI cannot be used; the message says what was expected."""
