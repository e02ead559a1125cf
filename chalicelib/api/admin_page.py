"""Serves the static admin page (admin/) from the API locally; production serves it from S3 + CloudFront."""
from __future__ import annotations

import mimetypes
import re
from pathlib import Path

from chalice.app import Blueprint, Response

from .errors import error_response

bp = Blueprint(__name__)
ADMIN_DIR = Path(__file__).resolve().parents[2] / "admin"
ASSET_NAME = re.compile(r"^[A-Za-z0-9_-]+\.(html|js|css|svg|png|ico|json)$")


def _serve(name: str) -> Response:
    path = ADMIN_DIR / name
    if not ASSET_NAME.match(name) or not path.is_file():
        return error_response(404, "not_found", f"no admin asset {name!r}")
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type in ("application/javascript", "application/json"):
        content_type += "; charset=utf-8"
    return Response(
        body=path.read_text(encoding="utf-8") if "charset" in content_type else path.read_bytes(),
        status_code=200,
        headers={"Content-Type": content_type, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


@bp.route("/admin", methods=["GET"])
def admin_index() -> Response:
    return _serve("index.html")


@bp.route("/admin/{name}", methods=["GET"])
def admin_asset(name: str) -> Response:
    return _serve(name or "index.html")
