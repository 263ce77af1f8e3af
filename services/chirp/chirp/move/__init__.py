"""Data movement between databases: copy (1->1), reshard (->N), merge (N->1); one engine."""
