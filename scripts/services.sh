#!/usr/bin/env bash
# Makes sure the local services strata's tests talk to are up, starting any that is down,
# and prints the environment variables that point the tests at them.
# Usage: eval "$(scripts/services.sh)"
set -uo pipefail

log() { printf '%s\n' "$*" >&2; }

wait_for() { # name, check command
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "services: $name did not come up"
  return 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A hot standby of the local PostgreSQL server: a second cluster of the same version on
# STANDBY_PORT, copied with pg_basebackup -R and following the primary by streaming
# replication. Left alone when it runs and streams, started when it is stopped, made again
# when it is broken (it does not start, is not in recovery, is a copy of another server,
# or does not stream). The primary only gains a pg_hba.conf line for replication from
# 127.0.0.1 (and a reload); wal_level replica is PostgreSQL's default.
STANDBY_NAME=standby
STANDBY_PORT=5433

as_postgres() { # command...: run as the clusters' owner
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"
  elif [ "$(id -un)" = postgres ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n -u postgres -- "$@"
  else return 1
  fi
}

pg_query() { # port, sql: one value, or nothing when the server does not answer
  psql -X -h 127.0.0.1 -p "$1" -U postgres -d postgres -Atqc "$2" 2>/dev/null
}

standby_state() { # streaming, waiting (may still connect), or broken
  local id='SELECT system_identifier FROM pg_control_system()' recovery
  recovery=$(pg_query "$STANDBY_PORT" 'SELECT pg_is_in_recovery()')
  if [ -z "$recovery" ]; then echo waiting; return; fi
  if [ "$recovery" != t ] ||
    [ "$(pg_query "$STANDBY_PORT" "$id")" != "$(pg_query 5432 "$id")" ]; then
    echo broken; return
  fi
  if [ "$(pg_query "$STANDBY_PORT" 'SELECT status FROM pg_stat_wal_receiver')" = streaming ]; then
    echo streaming
  else
    echo waiting
  fi
}

standby_streams() { # waits up to 15 s: the WAL receiver connects within a second or two
  local state
  for _ in $(seq 1 30); do
    state=$(standby_state)
    case $state in
      streaming) return 0 ;;
      broken) return 1 ;;
    esac
    sleep 0.5
  done
  return 1
}

ensure_standby() {
  local version primary_conf standby_conf data
  version=$(ls /etc/postgresql | sort -n | tail -n1)
  primary_conf=/etc/postgresql/$version/main
  standby_conf=/etc/postgresql/$version/$STANDBY_NAME
  data=/var/lib/postgresql/$version/$STANDBY_NAME
  if [ -d "$standby_conf" ]; then
    if port_open "$STANDBY_PORT" || {
      log "services: starting the PostgreSQL standby"
      pg_ctlcluster --skip-systemctl-redirect "$version" "$STANDBY_NAME" start >&2 &&
        wait_for "PostgreSQL standby" port_open "$STANDBY_PORT"
    }; then
      if standby_streams; then
        # A test pauses replay for a moment; one that died meanwhile left it paused.
        if [ "$(pg_query "$STANDBY_PORT" 'SELECT pg_is_wal_replay_paused()')" = t ]; then
          log "services: resuming replay on the PostgreSQL standby"
          pg_query "$STANDBY_PORT" 'SELECT pg_wal_replay_resume()' >/dev/null
        fi
        return 0
      fi
    fi
    log "services: the PostgreSQL standby is broken; making it again"
    pg_dropcluster --stop "$version" "$STANDBY_NAME" >&2 || true
  fi
  if port_open "$STANDBY_PORT"; then
    log "services: port $STANDBY_PORT is taken by something else; no PostgreSQL standby"
    return 1
  fi
  # The primary must accept replication connections from loopback (the "all" database
  # entry does not cover them).
  if ! grep -Eq '^[[:space:]]*host[[:space:]]+replication[[:space:]]+(all|postgres)[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' \
    "$primary_conf/pg_hba.conf"; then
    log "services: allowing replication from 127.0.0.1 on the primary"
    printf '%s\n' 'host replication postgres 127.0.0.1/32 trust' >>"$primary_conf/pg_hba.conf"
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload >&2 || return 1
  fi
  log "services: copying the primary into a PostgreSQL standby on port $STANDBY_PORT"
  rm -rf "$data"
  # A new cluster for its configuration (not started), whose data directory is then
  # replaced by a copy of the primary's.
  pg_createcluster "$version" "$STANDBY_NAME" --port "$STANDBY_PORT" --start-conf manual >&2 ||
    return 1
  # The same access rules as the primary it copies; loopback only; feedback to the
  # primary so that its cleanup does not cancel reads running on the standby.
  cp "$primary_conf/pg_hba.conf" "$standby_conf/pg_hba.conf" || return 1
  mkdir -p "$standby_conf/conf.d"
  printf '%s\n' "listen_addresses = '127.0.0.1'" 'hot_standby = on' 'hot_standby_feedback = on' \
    >"$standby_conf/conf.d/90-standby.conf" || return 1
  find "$data" -mindepth 1 -delete
  as_postgres pg_basebackup -h 127.0.0.1 -p 5432 -U postgres -D "$data" \
    --write-recovery-conf --wal-method=stream --checkpoint=fast >&2 || {
    log "services: pg_basebackup failed; no PostgreSQL standby"
    pg_dropcluster "$version" "$STANDBY_NAME" >&2 || true
    return 1
  }
  pg_ctlcluster --skip-systemctl-redirect "$version" "$STANDBY_NAME" start >&2 || return 1
  wait_for "PostgreSQL standby" port_open "$STANDBY_PORT" || return 1
  standby_streams || {
    log "services: the PostgreSQL standby does not stream from the primary"
    return 1
  }
}

if command -v pg_ctlcluster >/dev/null 2>&1; then
  if ! port_open 5432; then
    log "services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    wait_for PostgreSQL port_open 5432 || true
  fi
  port_open 5432 && echo "export STRATA_TEST_POSTGRES_URL='postgres://postgres@127.0.0.1:5432/test'"
  if port_open 5432 && ensure_standby; then
    echo "export STRATA_TEST_POSTGRES_REPLICA_URL='postgres://postgres@127.0.0.1:$STANDBY_PORT/test'"
  fi
fi

if command -v redis-server >/dev/null 2>&1; then
  if ! port_open 6379; then
    log "services: starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    wait_for Redis port_open 6379 || true
  fi
  port_open 6379 && echo "export STRATA_TEST_REDIS_URL='redis://127.0.0.1:6379'"
fi

if command -v rabbitmq-server >/dev/null 2>&1; then
  if ! port_open 5672; then
    log "services: starting RabbitMQ"
    rabbitmq-server -detached || true
    wait_for RabbitMQ port_open 5672 || true
  fi
  port_open 5672 && echo "export STRATA_TEST_AMQP_URL='amqp://guest:guest@127.0.0.1:5672/%2f'"
fi

if [ -x /usr/sbin/nats-server ]; then
  if ! port_open 4222; then
    log "services: starting NATS"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
      -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log || true
    wait_for NATS port_open 4222 || true
  fi
  port_open 4222 && echo "export STRATA_TEST_NATS_URL='nats://127.0.0.1:4222'"
fi
# An emulator of the AWS SNS and SQS APIs for the `sns` feature's tests: moto from PyPI,
# installed once into a venv of its own, on a loopback port; state in memory only. Only
# the SNS and SQS extras and the server's web framework: `moto[server]` pulls every
# service's dependencies, nearly four times the install time.
MOTO_VENV=${XDG_CACHE_HOME:-$HOME/.cache}/strata/moto-venv
MOTO_PORT=4566
if command -v python3 >/dev/null 2>&1; then
  if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
    log "services: installing moto (SNS, SQS, server) into $MOTO_VENV"
    { python3 -m venv "$MOTO_VENV" && "$MOTO_VENV/bin/pip" install -q 'moto[sns,sqs]' flask flask-cors; } >&2 ||
      log "services: moto did not install; no SNS/SQS emulator"
  fi
  if [ -x "$MOTO_VENV/bin/moto_server" ] && ! port_open "$MOTO_PORT"; then
    log "services: starting moto (SNS/SQS) on port $MOTO_PORT"
    setsid "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" \
      >"$(dirname "$MOTO_VENV")/moto.log" 2>&1 </dev/null &
    wait_for moto port_open "$MOTO_PORT" || true
  fi
  port_open "$MOTO_PORT" && echo "export STRATA_TEST_SNS_URL='http://127.0.0.1:$MOTO_PORT'"
fi

# Kafka: no broker is packaged; the tansu crate is a Kafka-API broker (installed once,
# about 7 minutes in release), run with its in-memory storage.
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v tansu >/dev/null 2>&1; then
  # One install at a time: a second caller waits for the first instead of building
  # the broker again beside it.
  mkdir -p "$HOME/.cache/strata"
  exec 9>"$HOME/.cache/strata/tansu-install.lock"
  flock 9
  if ! command -v tansu >/dev/null 2>&1; then
    log "services: installing the tansu Kafka broker (cargo install, several minutes)"
    cargo install tansu --locked --features dynostore >&2 \
      || cargo install tansu --features dynostore >&2 || true
  fi
  exec 9>&-
fi
if command -v tansu >/dev/null 2>&1; then
  if ! port_open 9092; then
    log "services: starting tansu (Kafka API) on 9092, log in /tmp/tansu.log"
    nohup tansu broker --listener-url tcp://127.0.0.1:9092 \
      --advertised-listener-url tcp://127.0.0.1:9092 --storage-engine memory://tansu/ \
      >/tmp/tansu.log 2>&1 </dev/null &
    wait_for tansu port_open 9092 || true
  fi
  port_open 9092 && echo "export STRATA_TEST_KAFKA_URL='kafka://127.0.0.1:9092'" \
    && echo "export STRATA_TEST_TANSU='$(command -v tansu)'"
fi
exit 0
