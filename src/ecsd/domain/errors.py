"""The one exception type the domain raises: an ECS error code with its HTTP status and message.

The HTTP layer turns it into ``{"error": {"code", "message"[, "details"]}}``; status and default
message come from the reference's catalogue (``error_catalogue.py``).
"""

from __future__ import annotations

from pydantic import ValidationError

from ecsd.domain.error_catalogue import CATALOGUE

# Codes the reference does not list but a production service still needs (decisions.md, "Errors").
EXTRA: dict[str, tuple[int, str]] = {
    "Common.0404": (404, "The requested resource does not exist."),
    "Common.0405": (405, "The request method is not allowed for this resource."),
    # The emulator controls' conflicts (emulator/state.py): a snapshot that cannot be kept or restored.
    "Common.0409": (409, "The request conflicts with the current state."),
    # Refused by the HTTP server before the application runs (http/server.py, docs/security.md).
    "Common.0400": (400, "The HTTP request is malformed."),
    "Common.0408": (408, "The request was not received in time."),
    "Common.0431": (431, "The request headers are too large."),
    # Too many failed logins from one client address (domain/lockout.py); the API gateway's code.
    "APIGW.0308": (429, "The throttling threshold has been reached."),
}


class EcsError(Exception):
    """A documented ECS error. ``detail`` becomes one entry of ``details`` (what exactly was wrong)."""

    def __init__(self, code: str, detail: str | None = None, *, status: int | None = None,
                 message: str | None = None, headers: dict[str, str] | None = None) -> None:
        known = CATALOGUE.get(code) or EXTRA.get(code) or (400, "Request error.")
        self.code = code
        self.status = status if status is not None else known[0]
        self.message = message if message is not None else known[1]
        self.detail = detail
        self.headers = headers          # extra response headers (e.g. Retry-After of a 429)
        super().__init__(f"{code}: {detail or self.message}")

    def body(self) -> dict:
        """The specific reason, when there is one, is the message (as in the reference's own examples,
        e.g. "privateIp [...] is not in this subnet [...]"): openstacksdk shows only ``message``."""
        if not self.detail:
            return {"error": {"code": self.code, "message": self.message}}
        return {"error": {"code": self.code, "message": f"{self.message} {self.detail}",
                          "details": [{"code": self.code, "message": self.detail}]}}


def invalid(detail: str) -> EcsError:
    """Ecs.0005, the reference's code for every malformed or out-of-range parameter."""
    return EcsError("Ecs.0005", detail)


def invalid_model(exc: ValidationError, where_default: str = "body") -> EcsError:
    """Ecs.0005 for the first problem pydantic found: ``loc.path: message``."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or where_default
    return invalid(f"{where}: {first.get('msg', 'invalid value')}")
