"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi …`."""

from backend import create_app

app = create_app()
