-- Online data moves (docs/moves.md). Every database says whether it is the live home of its rows:
--   live     the app writes here
--   standby  a move's target still catching up: only logical replication writes here
--   retired  a move's source after the cutover: kept in sync backwards until `complete`
-- `epoch` grows at each cutover and `shard_urls` is the layout from that epoch on (empty: the
-- app's configuration). An app write refused with SQLSTATE CH001 re-reads this row and follows it.
CREATE TABLE chirp_routing (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  epoch      bigint NOT NULL DEFAULT 0,
  state      text NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'standby', 'retired')),
  shard_urls text[] NOT NULL DEFAULT '{}',
  move_id    text,
  changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO chirp_routing DEFAULT VALUES;

-- Statement-level and VOLATILE: a write that waited on a cutover's table lock reads the state
-- committed by that cutover (fresh snapshot), so it is refused rather than lost on a retired copy.
-- Logical replication's apply workers run as session_replication_role = replica: not refused.
CREATE FUNCTION chirp_refuse_unless_live() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  routing chirp_routing;
BEGIN
  SELECT * INTO routing FROM chirp_routing;
  IF routing.state <> 'live' THEN
    RAISE EXCEPTION 'chirp: this database is % (routing epoch %)', routing.state, routing.epoch
      USING ERRCODE = 'CH001', DETAIL = array_to_string(routing.shard_urls, ',');
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER users_only_when_live BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
  FOR EACH STATEMENT EXECUTE FUNCTION chirp_refuse_unless_live();
CREATE TRIGGER posts_only_when_live BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON posts
  FOR EACH STATEMENT EXECUTE FUNCTION chirp_refuse_unless_live();
CREATE TRIGGER follows_only_when_live BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON follows
  FOR EACH STATEMENT EXECUTE FUNCTION chirp_refuse_unless_live();

-- A move, recorded on its first target (the coordinator): the commit points of its steps.
CREATE TABLE chirp_moves (
  move_id    text PRIMARY KEY,
  sources    text[] NOT NULL,
  targets    text[] NOT NULL,
  phase      text NOT NULL,
  epoch      bigint NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  changed_at timestamptz NOT NULL DEFAULT now(),
  report     jsonb NOT NULL DEFAULT '{}'
);

-- Cutover marks: written on an old database once its tables are locked and published with the
-- data. Replication applies a stream in commit order, so the mark showing up on the new side
-- proves every write committed before the lock is there too.
CREATE TABLE chirp_move_marks (
  move_id    text NOT NULL,
  stream     text NOT NULL,
  mark       bigint NOT NULL,
  written_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (move_id, stream, mark)
);
