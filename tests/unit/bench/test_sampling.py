"""The bench's sampled profile: which part of a request a py-spy stack is put in."""

from bench.stagebench.sampling import OTHER, parse_raw, part_of, shares

REQUEST = ["process 1:\"gunicorn\"",
           "ThreadWorker.handle_request (/v/gunicorn/workers/gthread.py:1)",
           "Flask.wsgi_app (/v/flask/app.py:2)", "Flask.full_dispatch_request (/v/flask/app.py:3)"]
TIMELINE = [*REQUEST, "timeline (/s/chirp/web/api.py:80)", "home_timeline (/s/chirp/reads.py:9)"]


def test_a_query_inside_a_cache_fill_is_the_databases():
    stack = [*TIMELINE, "Cache.fetch_many (/s/chirp/cache.py:1)",
             "load_followees (/s/chirp/reads.py:5)", "Databases.read (/s/chirp/db/pools.py:7)",
             "Connection.wait (/v/psycopg/connection.py:1)"]
    assert part_of(stack) == "timeline: database query"


def test_the_views_own_work_and_the_cache():
    assert part_of([*TIMELINE, "repair_page (/s/chirp/timeline_merge.py:3)"]) \
        == "timeline: building the page"
    assert part_of([*TIMELINE, "Cache.read_checked (/s/chirp/cache.py:1)",
                    "Redis.execute_command (/v/redis/client.py:1)"]) == "timeline: cache (Redis)"


def test_a_query_whose_outer_frames_py_spy_lost_is_still_the_databases():
    stack = ['process 1:"gunicorn"', "BaseCursor._execute_gen (/v/psycopg/_cursor_base.py:1)"]
    assert part_of(stack) == "timeline: database query"


def test_other_requests_are_set_apart_before_what_they_share():
    stack = [*REQUEST, "login (/s/chirp/web/api.py:40)", "log_in (/s/chirp/accounts.py:1)",
             "Databases.read (/s/chirp/db/pools.py:7)"]
    assert part_of(stack) == "other requests (posts, logins)"


def test_what_every_request_pays():
    assert part_of([*REQUEST,
                    "ServerSideSessionInterface.open_session (/v/flask_session/base.py:1)",
                    "Redis.get (/v/redis/commands/core.py:1)"]) == "session: load and save"
    assert part_of([*REQUEST, "Limiter._check_request_limit (/v/flask_limiter/_extension.py:1)"]) \
        == "rate limits (Flask-Limiter)"
    assert part_of(REQUEST[:2] + ["Parser.parse (/v/gunicorn/http/parser.py:1)"]) \
        == "gunicorn (HTTP, connections)"
    assert part_of(REQUEST) == "Flask and Werkzeug"
    assert part_of(['process 1:"gunicorn"']) == OTHER


def test_shares_of_raw_output():
    text = (";".join(TIMELINE + ["Cache.read_checked (/s/chirp/cache.py:1)"]) + " 3\n"
            + ";".join(REQUEST) + " 1\n\n")
    assert shares(parse_raw(text)) == {"timeline: cache (Redis)": 0.75, "Flask and Werkzeug": 0.25}
