"""gunicorn settings for `chirp web`.

One worker process per pod, many threads: at stages 1-3 sessions live in the web process, so one
pod must be one process (that is what ClientIP affinity pins a user to), and /metrics then sees
every request of the pod.
"""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8080')}"
workers = 1
worker_class = "gthread"
threads = int(os.environ.get("CHIRP_WEB_THREADS", "8"))
graceful_timeout = 30  # in-flight requests get this long to finish after SIGTERM reaches gunicorn
timeout = 60
keepalive = 5
accesslog = None
errorlog = "-"
loglevel = "info"
