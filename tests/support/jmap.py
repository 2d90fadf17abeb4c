"""A thin JMAP test client over Starlette's TestClient (or any httpx-like client)."""

from __future__ import annotations

import base64
from typing import Any

CORE = "urn:ietf:params:jmap:core"
PRINCIPALS = "urn:ietf:params:jmap:principals"
MEMBERSHIP = "https://ldap-jmap-bridge.github.io/jmap/membership"
ACCOUNT = "directory"
USING = [CORE, PRINCIPALS]


def basic(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Jmap:
    """Calls as one user; ``call`` returns the methodResponses, ``one`` the arguments of a
    single successful call (and fails the test on an error response)."""

    def __init__(self, client, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers

    def post(self, body: Any, **kwargs):
        return self.client.post("/jmap", json=body, headers=self.headers, **kwargs)

    def call(self, *calls: tuple[str, dict], using: list[str] | None = None) -> list[list]:
        body = {"using": USING if using is None else using,
                "methodCalls": [[name, args, str(n)] for n, (name, args) in enumerate(calls)]}
        response = self.post(body)
        assert response.status_code == 200, response.text
        return response.json()["methodResponses"]

    def one(self, name: str, using: list[str] | None = None, **args: Any) -> dict:
        (response,) = self.call((name, {"accountId": ACCOUNT, **args}), using=using)
        assert response[0] == name, response
        return response[1]

    def error(self, name: str, using: list[str] | None = None, **args: Any) -> dict:
        (response,) = self.call((name, {"accountId": ACCOUNT, **args}), using=using)
        assert response[0] == "error", response
        return response[1]

    def session(self) -> dict:
        response = self.client.get("/jmap/session", headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()
