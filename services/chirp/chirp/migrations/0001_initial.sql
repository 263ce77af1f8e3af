-- Chirp schema v1. Every row has an owner user (users.id, posts.author_id, follows.follower_id)
-- whose bucket decides its shard; rows of one owner always live together.
CREATE SEQUENCE chirp_id_seq;

-- Time-ordered ids carrying the owner's bucket; mirrors chirp/ids.py compose_id().
CREATE FUNCTION chirp_next_id(bucket integer) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
  SELECT ((floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint - 1704067200000) << 22)
         | (bucket::bigint << 12)
         | (nextval('chirp_id_seq') % 4096)
$$;

CREATE TABLE users (
  id            bigint PRIMARY KEY,
  username      text NOT NULL UNIQUE,
  password_hash text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE posts (
  id         bigint PRIMARY KEY,
  author_id  bigint NOT NULL REFERENCES users (id),
  body       text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 280),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX posts_by_author ON posts (author_id, id DESC);

-- Stored on the follower's shard; the followee may live on another shard (no foreign key).
CREATE TABLE follows (
  follower_id bigint NOT NULL REFERENCES users (id),
  followee_id bigint NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (follower_id, followee_id),
  CHECK (follower_id <> followee_id)
);
CREATE INDEX follows_by_followee ON follows (followee_id);
