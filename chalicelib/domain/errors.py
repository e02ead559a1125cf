"""Domain errors: each carries a stable machine code; api/errors.py maps them to HTTP statuses."""
from __future__ import annotations


class DomainError(Exception):
    """Base of every error kefu raises on purpose."""

    code = "domain_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class ValidationError(DomainError):
    """The caller's input is malformed or violates a rule (HTTP 400)."""

    code = "invalid_input"


class AuthenticationError(DomainError):
    """Missing, forged or expired credentials or signature (HTTP 401)."""

    code = "unauthenticated"


class PermissionDenied(DomainError):
    """Authenticated, but the role does not allow this (HTTP 403)."""

    code = "forbidden"


class NotFound(DomainError):
    """The addressed thing does not exist or is not visible to the caller (HTTP 404)."""

    code = "not_found"


class ConflictError(DomainError):
    """A concurrent write won, or the state does not allow this action (HTTP 409)."""

    code = "conflict"


class InvalidTransition(ConflictError):
    """The ticket's status does not allow the requested action (HTTP 409)."""

    code = "invalid_transition"
