"""The few Label Studio API calls the backend makes itself (plain ``httpx``; the SDK pins far
more packages than these four requests need).

* ``GET /api/users/<id>``: a reader's e-mail (webhooks name users by id only);
* ``GET /api/projects/<id>/export?exportType=JSON``: every annotation, to catch up on what was
  labelled while the backend was down;
* ``POST /api/dm/actions?id=retrieve_tasks_predictions``: Label Studio asks ``/predict`` again
  for every task (a new round's scores);
* ``PATCH /api/projects/<id>`` ``{"model_version": ...}``: the Data Manager's *Prediction
  score* then means the new round's scores.

Credentials: a legacy API token (``Authorization: Token ...``) or a personal access token (a JWT
refresh token, exchanged at ``/api/token/refresh`` for a short-lived ``Bearer`` access token, as
Label Studio's own SDK does).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

log = logging.getLogger("medactive.labelstudio")
TIMEOUT_S = 30.0
EXPORT_TIMEOUT_S = 300.0


class LabelStudioUnavailable(Exception):
    """A call to Label Studio failed (unreachable, refused credentials, unexpected answer)."""


def is_personal_access_token(key: str) -> bool:
    """A personal access token is a JWT: three dot-separated base64 parts."""
    return key.count(".") == 2 and len(key) > 40


class LabelStudioClient:
    """Calls to one Label Studio server.

    Args:
        url: its address, e.g. ``http://127.0.0.1:8080``.
        api_key: a legacy token or a personal access token.
    """

    def __init__(self, url: str, api_key: str, transport: httpx.BaseTransport | None = None
                 ) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self._access: str | None = None
        self._http = httpx.Client(base_url=self.url, timeout=TIMEOUT_S, transport=transport)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _auth(self, renew: bool = False) -> dict[str, str]:
        if not is_personal_access_token(self.api_key):
            return {"Authorization": f"Token {self.api_key}"}
        if self._access is None or renew:
            response = self._http.post("/api/token/refresh", json={"refresh": self.api_key})
            if response.status_code != 200 or "access" not in response.json():
                raise LabelStudioUnavailable(f"the personal access token was refused "
                                             f"(HTTP {response.status_code})")
            self._access = str(response.json()["access"])
        return {"Authorization": f"Bearer {self._access}"}

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, headers=self._auth(), **kwargs)
            if response.status_code == 401 and is_personal_access_token(self.api_key):
                response = self._http.request(method, path, headers=self._auth(renew=True),
                                              **kwargs)  # the access token expired
        except httpx.HTTPError as exc:
            raise LabelStudioUnavailable(f"{method} {path}: {exc}") from None
        if response.status_code >= 400:
            raise LabelStudioUnavailable(f"{method} {path}: HTTP {response.status_code} "
                                         f"{response.text[:200]}")
        return response

    def user_email(self, user_id: int) -> str | None:
        """The e-mail of user ``user_id`` (None if the user has none)."""
        email = self._call("GET", f"/api/users/{int(user_id)}").json().get("email")
        return email if isinstance(email, str) and email.strip() else None

    def export(self, project: int) -> list[Any]:
        """Every task of ``project`` with its annotations (Label Studio's JSON export)."""
        response = self._call("GET", f"/api/projects/{int(project)}/export",
                              params={"exportType": "JSON", "download_all_tasks": "true"},
                              timeout=EXPORT_TIMEOUT_S)
        data = response.json()
        if not isinstance(data, list):
            raise LabelStudioUnavailable("the export is not a list of tasks")
        return data

    def retrieve_predictions(self, project: int) -> None:
        """Make Label Studio fetch predictions of the backend's current version for every
        task (it calls ``/predict`` before this returns)."""
        self._call("POST", "/api/dm/actions",
                   params={"id": "retrieve_tasks_predictions", "project": int(project)},
                   json={"selectedItems": {"all": True, "excluded": []}},
                   timeout=EXPORT_TIMEOUT_S)

    def set_model_version(self, project: int, version: str) -> None:
        """Make ``version``'s predictions the ones the project shows and orders by."""
        self._call("PATCH", f"/api/projects/{int(project)}", json={"model_version": version})
