"""Online data moves between databases (copy, reshard, merge, N -> M) while writes go on:
docs/moves.md. `chirp move ...` (commands.py) drives online.py; layout, steps and handoff are the
pure decisions; seed.py fills databases for moves and benches (`chirp seed`)."""
