"""Celery task modules, one per bounded context; the module name is the queue name."""
