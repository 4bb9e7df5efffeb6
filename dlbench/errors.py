"""Exceptions shared across dlbench."""


class UserError(ValueError):
    """A mistake in what the user asked for (unknown suite/backend/op, bad option, unreadable
    results). The CLI prints its message on one line and exits non-zero, without a traceback."""
