"""The bounded contexts and the shared kernel (db, messaging). Imports neither Flask nor Celery."""
