"""Settings, Celery configuration, logging and gunicorn: the leaf every layer may import."""
