"""Staff authentication: bearer JWT (Cognito ID token, or HS256 locally) → an actor with roles."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ..domain.errors import AuthenticationError, PermissionDenied
from ..domain.routing import ROLES

if TYPE_CHECKING:
    import jwt

    from ..config import Settings
    from ..services.tickets import Actor

ANY_STAFF = frozenset(ROLES)
# Roles that work tickets (acknowledge, reply, resolve…); QA and product ops read and note.
WORKERS = frozenset(ROLES) - {"qa", "product_ops"}
ASSIGNERS = frozenset({"supervisor", "manager", "duty_manager", "admin"})


class TokenVerifier:
    """Verifies a bearer token once; the Cognito JWKS is fetched lazily and cached per container.

    PyJWT (and the `cryptography` it loads) is imported on the first verification, not at `import app`.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def _jwks(self) -> jwt.PyJWKClient:
        import jwt

        pool = self.settings.cognito_user_pool_id
        region = pool.split("_", 1)[0] if "_" in pool else self.settings.region
        return jwt.PyJWKClient(
            f"https://cognito-idp.{region}.amazonaws.com/{pool}/.well-known/jwks.json", cache_keys=True, lifespan=3600
        )

    def verify(self, token: str) -> Actor:
        import jwt

        try:
            if self.settings.auth_mode == "local":
                claims = jwt.decode(
                    token,
                    self.settings.local_jwt_secret,
                    algorithms=["HS256"],
                    options={"require": ["exp", "sub"]},
                )
            else:
                claims = self._verify_cognito(token)
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("token has expired", code="token_expired") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"token is not valid: {exc}", code="invalid_token") from exc
        return actor_from_claims(claims)

    def _verify_cognito(self, token: str) -> dict[str, Any]:
        import jwt

        pool = self.settings.cognito_user_pool_id
        if not pool or not self.settings.cognito_client_id:
            raise AuthenticationError("Cognito is not configured", code="auth_not_configured")
        region = pool.split("_", 1)[0]
        key = self._jwks.get_signing_key_from_jwt(token)
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            audience=self.settings.cognito_client_id,
            issuer=f"https://cognito-idp.{region}.amazonaws.com/{pool}",
            options={"require": ["exp", "sub", "token_use"]},
        )
        if claims.get("token_use") != "id":
            raise AuthenticationError("an ID token is required", code="invalid_token")
        return claims


def actor_from_claims(claims: Mapping[str, Any]) -> Actor:
    """`sub` (the staff id — `custom:staff_id` wins when Cognito sets it) and `cognito:groups` (roles)."""
    from ..services.tickets import Actor

    staff_id = str(claims.get("custom:staff_id") or claims.get("sub") or "")
    groups = claims.get("cognito:groups") or []
    if isinstance(groups, str):
        groups = [groups]
    if not staff_id or not isinstance(groups, list):
        raise AuthenticationError("token lacks sub or cognito:groups", code="invalid_token")
    return Actor(id=staff_id, roles=tuple(str(g) for g in groups if str(g) in ANY_STAFF))


def bearer_token(headers: Mapping[str, str]) -> str:
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("an 'Authorization: Bearer <token>' header is required", code="missing_token")
    return token.strip()


def require(verifier: TokenVerifier, headers: Mapping[str, str], roles: Iterable[str] = ANY_STAFF) -> Actor:
    """The acting staff member, or AuthenticationError (401) / PermissionDenied (403)."""
    actor = verifier.verify(bearer_token(headers))
    allowed = frozenset(roles)
    if not allowed.intersection(actor.roles):
        raise PermissionDenied(f"this needs one of the roles: {', '.join(sorted(allowed))}")
    return actor
