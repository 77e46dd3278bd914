"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi …`.

Both read the settings file first (backend/settings_file.py). A start refused for a setting,
the settings file or the database prints one line and exits with status 3
(backend/startup.py)."""

import gc
from pathlib import Path

from backend import create_app, refuse_another_time_zone, settings_file
from backend.allocator import map_big_blocks
from backend.startup import refusing_in_one_line

# Before the app is made: a worker gives back what a login's scrypt or a drawing
# held (backend/allocator.py).
map_big_blocks()

with refusing_in_one_line():
    # Flask's instance folder for the `backend` package: ./instance (instance/.env)
    settings_file.load(Path(__file__).resolve().parent / "instance")
    app = create_app()
    refuse_another_time_zone(app)

# What is made at start (modules, the app, its URL map, the document) lives as long as the
# process: moved out of the collector's sight, so that a full collection during a request walks
# only what that request made. At a county's size a page of a thousand rows otherwise paused in
# each full collection over every object of the imported libraries.
gc.freeze()
