"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi …`."""

from backend import create_app, refuse_another_time_zone

app = create_app()
refuse_another_time_zone(app)
