"""Chirp: a tiny microblog whose architecture grows with ScaleStage's stages (1..5)."""

__version__ = "0.1.0"


def create_app(config=None):
    """Flask app factory (imported lazily so `chirp migrate` does not load Flask)."""
    from chirp.app import create_app as _create_app

    return _create_app(config)
