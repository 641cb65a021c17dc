"""The one way the demo's and tests' fake servers (registry, models, package index) listen: a
threaded HTTP server on 127.0.0.1, on a free port, serving from a daemon thread."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(handle, *, http11: bool = True, head: bool = False) -> ThreadingHTTPServer:
    """Start a server whose GET (and HEAD, if asked: `handle(request, head=True)`) requests go to
    `handle(request)`; quiet, closed with `server.shutdown(); server.server_close()`."""

    class Handler(BaseHTTPRequestHandler):
        if http11:
            protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            handle(self)

        if head:

            def do_HEAD(self):
                handle(self, head=True)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
