"""Every SQL statement the app runs, one small function each; `db` is an Executor."""

_POST_COLUMNS = """p.id, p.author_id, u.username AS author, p.body,
  to_char(p.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS created_at"""


def insert_user(db, bucket: int, username: str, password_hash: str) -> dict:
    return db.one(
        "INSERT INTO users (id, username, password_hash) VALUES (chirp_next_id(%s), %s, %s)"
        " ON CONFLICT (username) DO NOTHING RETURNING id, username, created_at",
        (bucket, username, password_hash),
    )


def user_by_name(db, username: str) -> dict | None:
    return db.one("SELECT id, username, password_hash FROM users WHERE username = %s", (username,))


def user_by_id(db, user_id: int) -> dict | None:
    return db.one("SELECT id, username FROM users WHERE id = %s", (user_id,))


def profile(db, user_id: int) -> dict | None:
    return db.one(
        "SELECT u.id, u.username,"
        " to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS joined,"
        " (SELECT count(*) FROM posts WHERE author_id = u.id) AS posts,"
        " (SELECT count(*) FROM follows WHERE follower_id = u.id) AS following"
        " FROM users u WHERE u.id = %s",
        (user_id,),
    )


def insert_post(db, author_id: int, bucket: int, body: str) -> dict:
    return db.one(
        "WITH p AS (INSERT INTO posts (id, author_id, body) VALUES (chirp_next_id(%s), %s, %s)"
        " RETURNING *)"
        f" SELECT {_POST_COLUMNS} FROM p JOIN users u ON u.id = p.author_id",
        (bucket, author_id, body),
    )


def posts_by_ids(db, post_ids: list[int]) -> list[dict]:
    return db.all(
        f"SELECT {_POST_COLUMNS} FROM posts p JOIN users u ON u.id = p.author_id"
        " WHERE p.id = ANY(%s)",
        (post_ids,),
    )


def _newest_post_ids(authors: str) -> str:
    """SQL: the newest `limit` post ids older than the cursor (parameters: before, before, limit,
    limit) of the authors in `authors` (rows a(id)). Each author's own newest come from
    posts_by_author, LIMIT each (index only), and are merged: never a backward walk of every post
    filtered by author, which on 1M posts removes ~100,000 rows for a reader whose followees
    wrote long ago (60 ms against 0.8; bench data, docs/cache.md)."""
    return (f"SELECT q.id FROM {authors} CROSS JOIN LATERAL (SELECT id FROM posts"
            " WHERE author_id = a.id AND (%s::bigint IS NULL OR id < %s)"
            " ORDER BY id DESC LIMIT %s) q ORDER BY q.id DESC LIMIT %s")


def _posts_of(top: str) -> str:
    """SQL: the posts, newest first, whose ids the query `top` gives (rows top(id))."""
    return (f"SELECT {_POST_COLUMNS} FROM ({top}) top JOIN posts p ON p.id = top.id"
            " JOIN users u ON u.id = p.author_id ORDER BY p.id DESC")


def posts_by_authors(db, author_ids: list[int], before: int | None, limit: int) -> list[dict]:
    """Newest posts of any of these authors, older than `before`."""
    return db.all(
        _posts_of(_newest_post_ids("(SELECT DISTINCT unnest(%s::bigint[])) AS a(id)")),
        (author_ids, before, before, limit, limit),
    )


def recent_posts_per_author(db, author_ids: list[int], per_author: int) -> list[dict]:
    """Each author's newest `per_author` posts, in one statement (fills stage 4's cache)."""
    return db.all(
        f"SELECT {_POST_COLUMNS} FROM unnest(%s::bigint[]) AS a(id)"
        " CROSS JOIN LATERAL (SELECT * FROM posts WHERE author_id = a.id"
        "   ORDER BY id DESC LIMIT %s) p"
        " JOIN users u ON u.id = p.author_id ORDER BY p.id DESC",
        (author_ids, per_author),
    )


def home_timeline(db, user_id: int, before: int | None, limit: int) -> list[dict]:
    """Stages 1-4 without cache: followees' posts and one's own, newest first, in one statement."""
    return db.all(
        _posts_of(_newest_post_ids("(SELECT %s::bigint UNION SELECT followee_id FROM follows"
                                   " WHERE follower_id = %s) AS a(id)")),
        (user_id, user_id, before, before, limit, limit),
    )


def first_home_page(db, user_id: int, before: int | None,
                    limit: int) -> tuple[list[int], list[dict]]:
    """Whom the user follows and their home page, in one statement (stage 4's first read of a
    user): home_timeline's page, with the followees' ids alongside (a user with no page still
    gets one row)."""
    rows = db.all(
        f"SELECT f.ids AS followees, {_POST_COLUMNS}"
        " FROM (SELECT array(SELECT followee_id FROM follows WHERE follower_id = %s) AS ids) f"
        f" LEFT JOIN LATERAL ({_newest_post_ids('unnest(f.ids || %s::bigint) AS a(id)')}) top"
        " ON true LEFT JOIN posts p ON p.id = top.id LEFT JOIN users u ON u.id = p.author_id"
        " ORDER BY p.id DESC",
        (user_id, user_id, before, before, limit, limit),
    )
    page = [{k: v for k, v in row.items() if k != "followees"} for row in rows
            if row["id"] is not None]
    return list(rows[0]["followees"]), page


def public_posts(db, before: int | None, limit: int) -> list[dict]:
    return db.all(
        f"SELECT {_POST_COLUMNS} FROM posts p JOIN users u ON u.id = p.author_id"
        " WHERE (%s::bigint IS NULL OR p.id < %s) ORDER BY p.id DESC LIMIT %s",
        (before, before, limit),
    )


def followee_ids(db, user_id: int) -> list[int]:
    rows = db.all("SELECT followee_id FROM follows WHERE follower_id = %s", (user_id,))
    return [row["followee_id"] for row in rows]


def follower_ids(db, user_id: int) -> list[int]:
    rows = db.all("SELECT follower_id FROM follows WHERE followee_id = %s", (user_id,))
    return [row["follower_id"] for row in rows]


def is_following(db, follower_id: int, followee_id: int) -> bool:
    return db.one(
        "SELECT 1 AS yes FROM follows WHERE follower_id = %s AND followee_id = %s",
        (follower_id, followee_id),
    ) is not None


def insert_follow(db, follower_id: int, followee_id: int) -> bool:
    return db.run(
        "INSERT INTO follows (follower_id, followee_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (follower_id, followee_id),
    ) == 1


def delete_follow(db, follower_id: int, followee_id: int) -> bool:
    return db.run(
        "DELETE FROM follows WHERE follower_id = %s AND followee_id = %s",
        (follower_id, followee_id),
    ) == 1
