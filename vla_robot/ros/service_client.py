"""Blocking service calls for operator tools, with an answer that always comes back.

The console's clients (recorder_client.py, arm_client.py) call services from a web server's
worker thread while the node spins elsewhere. A missing service or one that never answers is
an ``Answer(ok=False, ...)`` that says so, never a hang and never an exception the page cannot
show.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    ok: bool
    message: str

    def as_dict(self) -> dict:
        return {"ok": self.ok, "message": self.message}


class ServiceClients:
    """Named service clients of one node: ``call(name, **request_fields)`` -> (Answer or None, response)."""

    def __init__(self, node, services: dict[str, tuple[type, str]], timeout_s: float = 5.0):
        self.timeout_s = timeout_s
        self._clients = {name: (srv, node.create_client(srv, path)) for name, (srv, path) in services.items()}

    def call(self, name: str, **fields):
        """The response, or an ``Answer`` saying why there is none (not available, no answer in time)."""
        srv_type, client = self._clients[name]
        if not client.wait_for_service(timeout_sec=min(self.timeout_s, 2.0)):
            return Answer(False, f"{client.srv_name} is not available: is the node running in this ROS domain?")
        done = threading.Event()
        future = client.call_async(srv_type.Request(**fields))
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(self.timeout_s):
            future.cancel()
            return Answer(False, f"{client.srv_name} did not answer within {self.timeout_s:g} s")
        return future.result()

    def trigger(self, name: str, **fields) -> Answer:
        """A std_srvs Trigger / SetBool call as an ``Answer`` (success, message)."""
        response = self.call(name, **fields)
        if isinstance(response, Answer):
            return response
        return Answer(bool(response.success), response.message)
