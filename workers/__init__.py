"""The Celery app, the task base, the outbox publisher and the run command."""
