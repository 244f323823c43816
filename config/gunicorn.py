"""gunicorn settings for the web process (``gunicorn -c config/gunicorn.py``).

Host, port, workers and threads come from the validated settings (WEB_HOST, WEB_PORT,
WEB_CONCURRENCY, WEB_THREADS): a bad value stops gunicorn with a message naming the
variable. (gunicorn itself reads WEB_CONCURRENCY as an integer before this file: a value
that is no integer at all fails there, in a traceback that shows the variable.)
"""
import gc
import os

from config.settings import host_port, settings_or_exit

_settings = settings_or_exit(os.environ)

bind = host_port(_settings.web_host, _settings.web_port)
workers = _settings.web_concurrency
threads = _settings.web_threads
worker_class = "sync" if threads == 1 else "gthread"
accesslog = None
timeout = 30
graceful_timeout = 10
wsgi_app = "web:create_app()"
# gunicorn's control socket defaults to one path per user ($HOME/.gunicorn): two servers on
# one machine would take it from each other. We do not use it, so it stays off.
control_socket_disable = True


def post_worker_init(worker: object) -> None:
    """Once the worker has built the app, move everything it allocated so far (modules,
    models, compiled statements: some 200,000 objects) out of the garbage collector's sight.

    They live as long as the worker, yet each full collection walked all of them: a stall
    of 130-170 ms every few thousand requests in each worker, which set the p99 latency.
    """
    gc.freeze()
