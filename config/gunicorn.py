"""gunicorn settings for the web process (``gunicorn -c config/gunicorn.py``)."""
import gc
import os

bind = f"{os.environ.get('WEB_HOST', '127.0.0.1')}:{os.environ.get('WEB_PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "1"))
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
