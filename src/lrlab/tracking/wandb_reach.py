"""Whether W&B's endpoint can be reached, decided in seconds and once per sweep.

Without network, `wandb.init` waits its whole `init_timeout` (60 s) although the name lookup
fails at once; `endpoint_problem` finds that out first, within `PROBE_TIMEOUT_S`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PROBE_TIMEOUT_S = 5.0  # for the name lookup and the TCP connection to W&B's endpoint
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")


def wandb_base_url() -> str:
    return os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"


def endpoint_problem(base_url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why W&B's endpoint cannot be reached (its name does not resolve, the connection is
    refused or times out), or None. Behind a proxy only the proxy knows: None."""
    if any(os.environ.get(v) for v in PROXY_VARIABLES):
        return None
    url = urlsplit(base_url)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    found: list[Any] = []
    # getaddrinfo has no timeout of its own: a daemon thread, abandoned after `timeout`
    lookup = threading.Thread(target=_resolve, args=(host, port, found), daemon=True)
    lookup.start()
    lookup.join(timeout)
    if not found:
        return f"W&B's endpoint {host}: no answer to the name lookup within {timeout:g} s"
    if isinstance(found[0], OSError):
        return f"W&B's endpoint {host} cannot be resolved ({found[0]})"
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        return f"W&B's endpoint {host}:{port} cannot be reached ({e.strerror or e})"
    return None


def _resolve(host: str, port: int, found: list[Any]) -> None:
    try:
        found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    except OSError as e:
        found.append(e)


def shared_endpoint_check(marker: Path | None, base_url: str) -> str | None:
    """`endpoint_problem`, decided once per sweep: the first job checks (holding a lock
    beside the `marker`), a failure leaves the marker, and the jobs that waited on the lock
    (joblib workers, other launchers' processes) find it instead of checking again (None:
    the caller sees the marker)."""
    if marker is None:
        return endpoint_problem(base_url)
    try:
        lock = open(marker.with_suffix(".lock"), "a")  # noqa: SIM115 - closed below
    except OSError:  # a read-only sweep dir: each job checks for itself
        return endpoint_problem(base_url)
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if marker.is_file():  # decided by an earlier job: the caller goes offline at once
            return None
        problem = endpoint_problem(base_url)
        if problem is not None:
            with contextlib.suppress(OSError):
                marker.write_text(f"W&B online init failed ({problem})\n")
        return problem
