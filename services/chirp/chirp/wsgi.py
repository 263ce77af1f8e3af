"""WSGI entry for gunicorn: the app built from the environment."""

from chirp.app import create_app

app = create_app()
