"""The fault tests' own Redis and PostgreSQL (tests/support/redis_server.py, postgres_cluster.py)
work: each starts, a web process serves a generation through it, and it restarts on the same
address. The faults themselves (Redis stopped or PostgreSQL restarted under load) are tested
beside this file; these prove the fixtures they use."""

from __future__ import annotations

import openai
import psycopg
import pytest

from tests.support.postgres_cluster import PostgresCluster
from tests.support.redis_server import RedisServer

from .books import assert_books_balance_and_nothing_held
from .conftest import Customers, Processes
from .load import MODEL, SIZE, unique
from .own_database import assert_books_balance_in, customers_in, database_on

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def one_generation(base_url: str, key: str) -> openai.types.ImagesResponse:
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0) as client:
        return client.images.generate(model=MODEL, prompt=unique("a harbour"), size=SIZE)


def test_a_redis_of_the_tests_own_counts_a_served_generation_and_restarts_empty(
    own_redis: RedisServer, processes: Processes, customers: Customers, fault_env
):
    customer = customers.open(credits=1000)
    web = processes.web({**fault_env, "RATE_LIMIT_REDIS_URL": own_redis.url()})

    answer = one_generation(web.url, customer.key)

    assert answer.data and answer.data[0].url
    # The web process counted the request in this Redis, not in the shared one.
    counters = own_redis.client().keys(f"seedream:rl:a{customer.account_id}:requests:*")
    assert counters
    assert_books_balance_and_nothing_held(redis_url=own_redis.url())

    own_redis.stop()
    assert not own_redis.running
    own_redis.start()  # the same port, empty
    assert own_redis.client().ping()
    assert own_redis.client().dbsize() == 0


def test_a_postgres_cluster_of_the_tests_own_serves_a_generation_and_restarts(
    own_postgres: PostgresCluster, processes: Processes, fault_env
):
    env = database_on(own_postgres, fault_env, "faults_smoke")
    [customer] = customers_in(env, 1, credits=1000)
    web = processes.web(env)

    answer = one_generation(web.url, customer.key)

    assert answer.data and answer.data[0].url
    assert_books_balance_in(env)
    for mode in ("fast", "immediate"):
        own_postgres.restart(mode)
        with psycopg.connect(env["DATABASE_URL"]) as connection:
            assert connection.execute("SELECT count(*) FROM api_generation").fetchone() == (1,)
    assert_books_balance_in(env)
