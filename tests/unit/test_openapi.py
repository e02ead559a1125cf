"""The OpenAPI description names every route and method app.py serves, and nothing it does not."""
from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_every_route_is_described_and_every_description_is_a_route() -> None:
    import app as kefu_app

    served = {
        (path, method.lower())
        for path, methods in kefu_app.app.routes.items()
        for method in methods
    }
    spec = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text(encoding="utf-8"))
    described = {
        (path, method)
        for path, operations in spec["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert served - described == set(), "routes missing from docs/openapi.yaml"
    assert described - served == set(), "docs/openapi.yaml describes routes app.py does not serve"


def test_every_error_response_uses_the_error_schema() -> None:
    spec = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text(encoding="utf-8"))
    for name, response in spec["components"]["responses"].items():
        if name.startswith("Error"):
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}
