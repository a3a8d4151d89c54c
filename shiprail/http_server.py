"""The threaded HTTP server behind shiprail's own listeners (codec server, demo fleet).

The standard library's server prints a traceback to stderr for every request whose client
hung up first. Clients do that all the time (a scrape that timed out, a load generator
that stopped, a browser tab closed), and a traceback in a terminal reads as a crash. It
also listens with a backlog too short for a burst of callers on a loaded host.
"""

from __future__ import annotations

import logging
import sys
from http.server import ThreadingHTTPServer
from typing import Any

_log = logging.getLogger(__name__)

_HUNG_UP = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)


class HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    # The standard library listens with a backlog of 5. When a busy host is slow to run the
    # accepting thread, a burst of callers overflows that queue and Linux drops their
    # handshakes: each caller waits a second or more for a retransmit, and one with a short
    # timeout reports an error that no version of the service caused.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        failure = sys.exc_info()[1]
        if isinstance(failure, _HUNG_UP):
            _log.debug("client %s hung up: %s", client_address, failure)
            return
        _log.error("request from %s failed", client_address, exc_info=True)
