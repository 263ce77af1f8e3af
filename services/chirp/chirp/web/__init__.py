"""Blueprints: api (JSON), pages (HTML), ops (health, readiness, metrics), architecture."""
