"""Commands on a connection each thread holds (domain.held_redis), on the session's real Redis.

Each test keeps to keys of its own; an ordinary client of the same Redis looks on.
"""
from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator

import pytest
import redis

from config.settings import Settings
from domain.held_redis import HeldRedis, Script
from tests.support.waiting import wait_for


@pytest.fixture
def held(settings: Settings) -> Iterator[HeldRedis]:
    client = HeldRedis(settings.broker_url, socket_timeout=0.5, socket_connect_timeout=2)
    yield client
    client.close()


@pytest.fixture
def key(broker_redis: redis.Redis) -> Iterator[str]:
    name = f"test-held-{uuid.uuid4().hex}"
    yield name
    broker_redis.delete(name)


def test_commands_go_on_one_held_connection(held: HeldRedis, broker_redis: redis.Redis, key: str) -> None:
    first = held.execute("CLIENT", "ID")
    assert held.execute("RPUSH", key, "a", "b") == 2
    assert held.execute("LRANGE", key, 0, -1) == [b"a", b"b"]
    assert held.execute("CLIENT", "ID") == first
    assert broker_redis.lrange(key, 0, -1) == [b"a", b"b"]


def test_each_thread_holds_its_own_connection_until_it_ends(held: HeldRedis,
                                                             broker_redis: redis.Redis) -> None:
    mine = held.execute("CLIENT", "ID")
    theirs: list[int] = []
    worker = threading.Thread(target=lambda: theirs.extend(held.execute("CLIENT", "ID") for _ in range(2)))
    worker.start()
    worker.join(timeout=10)
    assert len(theirs) == 2 and theirs[0] == theirs[1] != mine
    assert held.execute("CLIENT", "ID") == mine
    # The ended thread's connection is closed with it, not left for the garbage collector.
    wait_for(lambda: str(theirs[0]) not in {str(c["id"]) for c in broker_redis.client_list()}, timeout=10,
             message="the ended thread's connection to close")


def test_a_forked_child_opens_its_own_and_leaves_the_parents_alone(held: HeldRedis) -> None:
    mine = held.execute("CLIENT", "ID")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its connection's id, then leave without cleanup
        try:
            os.write(write_end, str(held.execute("CLIENT", "ID")).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        childs = int(pipe.read())
    assert os.waitpid(pid, 0)[1] == 0
    assert childs != mine
    assert held.execute("CLIENT", "ID") == mine  # the child's exit did not take the parent's socket


def test_a_dropped_connection_is_opened_again(held: HeldRedis, broker_redis: redis.Redis, key: str) -> None:
    first = held.execute("CLIENT", "ID")
    broker_redis.client_kill_filter(_id=first)
    assert held.execute("SET", key, "after") == b"OK"
    assert held.execute("CLIENT", "ID") != first
    assert broker_redis.get(key) == b"after"


def test_an_error_answer_leaves_the_connection_in_step(held: HeldRedis, key: str) -> None:
    first = held.execute("CLIENT", "ID")
    held.execute("SET", key, "text")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        held.execute("LPUSH", key, "x")
    assert held.execute("GET", key) == b"text"
    assert held.execute("CLIENT", "ID") == first


def test_after_a_timeout_no_late_answer_is_read_for_the_next_command(held: HeldRedis, key: str) -> None:
    # BLPOP blocks past the socket timeout (0.5 s), twice (the retry); its nil answer comes
    # after 1 s on a connection that must no longer be read.
    with pytest.raises(redis.TimeoutError):
        held.execute("BLPOP", key, 1)
    assert held.execute("ECHO", "next") == b"next"


def test_a_script_redis_does_not_hold_is_sent_whole_then_by_its_sha(
        held: HeldRedis, broker_redis: redis.Redis, key: str) -> None:
    script = Script(f"-- {uuid.uuid4().hex}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert broker_redis.script_exists(script.sha) == [False]
    assert held.run_script(script, [key], [5]) == 5
    assert broker_redis.script_exists(script.sha) == [True]
    assert held.run_script(script, [key], [2]) == 7


def test_an_unreachable_redis_is_a_connection_error() -> None:
    held = HeldRedis("redis://127.0.0.1:1/0", socket_timeout=0.5, socket_connect_timeout=0.5)
    with pytest.raises(redis.ConnectionError):
        held.execute("PING")
