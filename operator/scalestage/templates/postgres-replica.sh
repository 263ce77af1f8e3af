set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "postgres: waiting for the primary at $PRIMARY_HOST"
  until pg_isready -q -h "$PRIMARY_HOST" -p @PORT@; do sleep 2; done
  rm -rf "$PGDATA.partial"
  PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup -h "$PRIMARY_HOST" -p @PORT@ -U replicator \
    -D "$PGDATA.partial" -R -X stream -c fast
  mv "$PGDATA.partial" "$PGDATA"
fi
exec postgres -D "$PGDATA" @SERVER_FLAGS@
