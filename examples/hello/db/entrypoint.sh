#!/bin/sh
# Initialise the cluster on first start (an empty volume), then run PostgreSQL as the
# postgres user, as PID 1 so that it gets the stop signal itself.
set -e
mkdir -p "$PGDATA" /run/postgresql
chown -R postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  as_postgres initdb -D "$PGDATA" -U postgres --auth-local=trust --auth-host=trust >/dev/null
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  # The example trusts every client that can reach it: the database publishes no
  # port and is reachable only on the project's network.
  echo "host all all all trust" >> "$PGDATA/pg_hba.conf"
  echo "db: initialised a new cluster in $PGDATA"
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA"
