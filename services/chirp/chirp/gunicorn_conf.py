"""gunicorn settings for `chirp web`.

One worker process per pod, many threads: at stages 1-3 sessions live in the web process, so one
pod must be one process (that is what ClientIP affinity pins a user to), and /metrics then sees
every request of the pod.

Graceful stop is gunicorn's own: on SIGTERM it stops accepting connections, lets in-flight requests
finish for up to graceful_timeout seconds, then exits 0. The pod's preStop sleep runs before the
SIGTERM so that Services stop sending new requests first (docs/contracts.md).
"""

import os

GRACEFUL_TIMEOUT_SECONDS = 30
# gunicorn answers a longer request line (URL + query) itself, 400 text/html, before the app.
REQUEST_LINE_LIMIT = 4094

bind = f"0.0.0.0:{os.environ.get('PORT', '8080')}"
workers = 1
worker_class = "gthread"
threads = int(os.environ.get("CHIRP_WEB_THREADS", "8"))
graceful_timeout = GRACEFUL_TIMEOUT_SECONDS
timeout = 60
keepalive = 5
limit_request_line = REQUEST_LINE_LIMIT
accesslog = None
errorlog = "-"
loglevel = "info"
