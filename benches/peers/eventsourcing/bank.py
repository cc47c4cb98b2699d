"""The bank-account comparison on the Python eventsourcing library with its PostgreSQL
module: the same aggregate and the same command sequence as `strata bench postgres`
(open, seven deposits, a withdrawal, a deposit, then a new account), from closed-loop
client threads, each command loading the aggregate from its events, deciding and saving
one event.

Usage: python bank.py URL [--clients 1,8,32] [--seconds 5]
Prints one JSON line per client count. The database at URL gets fresh tables per run.
"""

import argparse
import json
import os
import threading
import time
import urllib.parse
import uuid

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

COMMANDS_PER_ACCOUNT = 10
DEPOSIT = 100
WITHDRAWAL = 50


class InsufficientFunds(Exception):
    pass


class Account(Aggregate):
    @event("Opened")
    def __init__(self, name: str):
        self.name = name
        self.balance = 0

    @staticmethod
    def create_id(name: str) -> uuid.UUID:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"/accounts/{name}")

    @event("Deposited")
    def deposit(self, amount: int) -> None:
        self.balance += amount

    def withdraw(self, amount: int) -> None:
        if amount > self.balance:
            raise InsufficientFunds(self.name)
        self._withdrew(amount)

    @event("Withdrew")
    def _withdrew(self, amount: int) -> None:
        self.balance -= amount


class Bank(Application):
    def open(self, name: str) -> None:
        self.save(Account(name))

    def deposit(self, name: str, amount: int) -> None:
        account = self.repository.get(Account.create_id(name))
        account.deposit(amount)
        self.save(account)

    def withdraw(self, name: str, amount: int) -> None:
        account = self.repository.get(Account.create_id(name))
        account.withdraw(amount)
        self.save(account)


def command(bank: Bank, client: int, seq: int) -> None:
    name = f"c{client}n{seq // COMMANDS_PER_ACCOUNT}"
    step = seq % COMMANDS_PER_ACCOUNT
    if step == 0:
        bank.open(name)
    elif step == 8:
        bank.withdraw(name, WITHDRAWAL)
    else:
        bank.deposit(name, DEPOSIT)


def percentile(samples, p):
    if not samples or (p > 50 and len(samples) < 1000):
        return None
    rank = -(-len(samples) * p // 100)
    return samples[max(1, min(int(rank), len(samples))) - 1] * 1000.0


def run(url: str, clients: int, seconds: float) -> dict:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bank_events")
    parts = urllib.parse.urlparse(url)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/"),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": parts.username or "postgres",
        "POSTGRES_PASSWORD": parts.password or "",
        "POSTGRES_POOL_SIZE": str(clients),
        "POSTGRES_MAX_OVERFLOW": "0",
        "CREATE_TABLE": "y",
    }
    bank = Bank(env=env)
    start = time.monotonic()
    window_start = start + seconds / 10
    end = window_start + seconds
    results = []
    lock = threading.Lock()

    def client_loop(client: int) -> None:
        samples, errors, first_error, seq = [], 0, None, 0
        while True:
            started = time.monotonic()
            if started >= end:
                break
            try:
                command(bank, client, seq)
                done = time.monotonic()
                if window_start <= done < end:
                    samples.append(done - started)
            except Exception as err:  # noqa: BLE001 - counted and reported
                errors += 1
                first_error = first_error or repr(err)
                if errors >= 100:
                    break
            seq += 1
        with lock:
            results.append((samples, errors, first_error))

    threads = [threading.Thread(target=client_loop, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bank.close()
    samples = sorted(s for r in results for s in r[0])
    errors = sum(r[1] for r in results)
    first_error = next((r[2] for r in results if r[2]), None)
    return {
        "impl": "eventsourcing",
        "scenario": f"bank_commands_{clients}",
        "clients": clients,
        "commands_per_s": len(samples) / seconds,
        "p50_ms": percentile(samples, 50),
        "p99_ms": percentile(samples, 99),
        "samples": len(samples),
        "errors": errors,
        "first_error": first_error,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    for clients in (int(c) for c in args.clients.split(",")):
        print(json.dumps(run(args.url, max(clients, 1), args.seconds)), flush=True)


if __name__ == "__main__":
    main()
