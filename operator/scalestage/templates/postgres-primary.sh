set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "postgres: initdb of a new cluster in $PGDATA"
  pwfile="$(mktemp)"
  printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" -A scram-sha-256 --auth-local=trust \
    -E UTF8 --no-locale
  rm -f "$pwfile"
  printf '%s\n' "host replication replicator all scram-sha-256" "host all all all scram-sha-256" \
    >> "$PGDATA/pg_hba.conf"
fi
pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
psql -q -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres \
  -v pw="$POSTGRES_PASSWORD" -v rpw="$REPLICATION_PASSWORD" -v db="$POSTGRES_DB" <<'SQL'
ALTER ROLE CURRENT_USER PASSWORD :'pw';
SELECT 'CREATE ROLE replicator REPLICATION LOGIN'
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'replicator') \gexec
ALTER ROLE replicator PASSWORD :'rpw';
SELECT format('CREATE DATABASE %I', :'db')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
pg_ctl -D "$PGDATA" -m fast -w stop
exec postgres -D "$PGDATA" @SERVER_FLAGS@
