-- Bookkeeping for copy / reshard / merge: a run per target, and how far each (source, table) got,
-- written in the same transaction as the rows, so a killed run resumes where it stopped.
CREATE TABLE chirp_move_runs (
  sources     text PRIMARY KEY,
  started_at  timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);

CREATE TABLE chirp_move_checkpoints (
  source     text NOT NULL,
  table_name text NOT NULL,
  last_key   jsonb NOT NULL,
  PRIMARY KEY (source, table_name)
);
