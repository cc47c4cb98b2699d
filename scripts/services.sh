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

if command -v pg_ctlcluster >/dev/null 2>&1; then
  if ! port_open 5432; then
    log "services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    wait_for PostgreSQL port_open 5432 || true
  fi
  port_open 5432 && echo "export STRATA_TEST_POSTGRES_URL='postgres://postgres@127.0.0.1:5432/test'"
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

# Kafka: no broker is packaged; the tansu crate is a Kafka-API broker (installed once,
# about 7 minutes in release), run with its in-memory storage.
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v tansu >/dev/null 2>&1; then
  log "services: installing the tansu Kafka broker (cargo install, several minutes)"
  cargo install tansu --locked --features dynostore >&2 \
    || cargo install tansu --features dynostore >&2 || true
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
