"""JSON batching (`POST /v1.0/$batch`) for the Graph simulator, per Microsoft's v1.0 description.

The body is `{"requests": [{"id", "method", "url", "headers"?, "body"?, "dependsOn"?}]}` with 1 to 20
requests; ids are unique (case-insensitively); `url` is relative to the version ("/users/..." or
"users/..."); a request with a body must give its Content-Type. Each request runs on its own, with the
batch's Authorization, and gets its own `{"id", "status", "headers", "body"}`: a 429 inside the batch
carries its Retry-After in its own headers while the batch itself answers 200. Graph returns the
responses in any order; the simulator returns them in reverse, so a client that pairs them by
position instead of by id fails here as it would against Graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pbxsync.sync.simulator.graph_json import HttpError, error_body

MAX_REQUESTS = 20
METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")
JSON_TYPE = "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"

# (method, url relative to the version, headers, body) -> (status, headers, body or None)
Execute = Callable[[str, str, dict[str, str], object], tuple[int, dict[str, str], object]]


def _bad(message: str) -> HttpError:
    return HttpError(400, error_body("BadRequest", message))


def checked_requests(body: object) -> list[dict[str, Any]]:
    """The batch's requests after Graph's envelope checks (HttpError 400 otherwise)."""
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        raise _bad("Invalid batch payload format: a 'requests' array is required.")
    requests: list[dict[str, Any]] = body["requests"]
    if not requests:
        raise _bad("Invalid batch payload format: the 'requests' array is empty.")
    if len(requests) > MAX_REQUESTS:
        raise _bad(f"Unable to process the batch request: it has {len(requests)} requests; "
                   f"the limit is {MAX_REQUESTS}.")
    seen: set[str] = set()
    for request in requests:
        if not isinstance(request, dict):
            raise _bad("Invalid batch payload format: each request must be an object.")
        rid, method, url = request.get("id"), request.get("method"), request.get("url")
        if not isinstance(rid, str) or not rid:
            raise _bad("Invalid batch payload format: every request needs a string 'id'.")
        if rid.lower() in seen:
            raise _bad(f"Invalid batch payload format: the request id '{rid[:40]}' is used twice.")
        seen.add(rid.lower())
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise _bad(f"Invalid batch payload format: request '{rid[:40]}' has no valid 'method'.")
        if not isinstance(url, str) or not url or url.startswith(("http:", "https:")):
            raise _bad(f"Invalid batch payload format: request '{rid[:40]}' needs a relative 'url'.")
        headers = request.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise _bad(f"Invalid batch payload format: the headers of request '{rid[:40]}' are not an object "
                       "of strings.")
        if "body" in request and not any(k.lower() == "content-type" for k in headers):
            raise _bad(f"Invalid batch payload format: request '{rid[:40]}' has a body but no Content-Type.")
        depends = request.get("dependsOn", [])
        if not isinstance(depends, list) or not all(isinstance(d, str) and d.lower() in seen for d in depends):
            raise _bad(f"Invalid batch payload format: request '{rid[:40]}' depends on an unknown or later id.")
    return requests


def run_batch(body: object, execute: Execute) -> dict[str, Any]:
    """Run every request in order (so each `dependsOn` is already done) and collect the responses."""
    responses: list[dict[str, Any]] = []
    for request in checked_requests(body):
        url = request["url"] if request["url"].startswith("/") else "/" + request["url"]
        status, headers, answer = execute(request["method"].upper(), url, dict(request.get("headers", {})),
                                          request.get("body"))
        item: dict[str, Any] = {"id": request["id"], "status": status,
                                "headers": {"Content-Type": JSON_TYPE, **headers} if answer is not None else headers}
        if answer is not None:
            item["body"] = answer
        responses.append(item)
    return {"responses": responses[::-1]}
