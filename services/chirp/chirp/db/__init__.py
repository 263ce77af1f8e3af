"""Thin edges to Postgres: pools and routing, migrations, fencing, queries."""
