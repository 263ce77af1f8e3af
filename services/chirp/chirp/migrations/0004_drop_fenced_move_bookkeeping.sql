-- The fence-first copy engine (migration 0002) is gone: online moves (0003, docs/moves.md) keep
-- their state in chirp_moves and in the replication objects themselves.
DROP TABLE IF EXISTS chirp_move_checkpoints;
DROP TABLE IF EXISTS chirp_move_runs;
