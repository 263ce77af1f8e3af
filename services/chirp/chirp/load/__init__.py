"""`chirp load`: a load generator that talks to Chirp only through its JSON API and proves, at the
end, that every acknowledged write is readable exactly once (docs/load.md).

plan.py    pure: the request mix, pacing to a rate, which worker drives which user
stats.py   pure: percentiles, per-second windows and run totals
ledger.py  pure: the write ledger (nonces) and its verification against what the API returns
client.py  the HTTP edge: one fresh connection per request, cookies, outcome classification
run.py     the loop: workers, the ticker (one JSON line per second), stop, verify, summary
commands.py  the `chirp load` subparser
"""
