"""Credentials Secret: generated once, kept forever, only missing keys filled in."""

import base64

from scalestage.specs import secrets


def encoded(values):
    return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}}


def counter():
    calls = iter(range(100))
    return lambda size: f"generated-{next(calls)}-{size}"


def test_fresh_credentials_for_every_key():
    creds = secrets.credentials(None, counter())
    assert set(creds) == set(secrets.KEYS)
    assert len(set(creds.values())) == len(secrets.KEYS)


def test_existing_values_are_kept():
    existing = {k: f"old-{k}" for k in secrets.KEYS}
    assert secrets.credentials(encoded(existing), counter()) == existing


def test_only_missing_keys_are_generated():
    existing = {secrets.DB_PASSWORD: "keep-me"}
    creds = secrets.credentials(encoded(existing), counter())
    assert creds[secrets.DB_PASSWORD] == "keep-me"
    assert creds[secrets.REPLICATION_PASSWORD].startswith("generated-")


def test_default_generator_is_long_and_random():
    a, b = secrets.credentials(None), secrets.credentials(None)
    assert a[secrets.DB_PASSWORD] != b[secrets.DB_PASSWORD]
    assert len(a[secrets.DB_PASSWORD]) >= 40


def test_builder_round_trips(plan, names):
    creds = {k: f"value-of-{k}" for k in secrets.KEYS}
    [secret] = secrets.build(plan(2), names, creds)
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "chirp-credentials"
    assert secrets.credentials(secret, counter()) == creds


def test_same_secret_at_every_stage(plan, names):
    creds = secrets.credentials(None)
    assert secrets.build(plan(1), names, creds) == secrets.build(plan(5), names, creds)
