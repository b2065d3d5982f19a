"""Managed keys across replicas: two ``coop serve`` processes sharing one state, a real
Redis (``tests/redis_server.py``) or one SQLite file, and ``coop keys`` as a third process.

What has to hold in total holds in total: a key's rpm across both replicas, its spend
summed over them, a revocation seen by each within a second, and of two processes
creating the same name at once exactly one wins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes import FakeOpenAI
from plugin_dists import make_dist
from redis_server import RedisServer
from test_gateway_process import PROVIDER, Served

BOUND = 30.0
REPLICAS = 2


@dataclass
class Cluster:
    folder: Path
    env: dict[str, str]
    urls: list[str]
    up: FakeOpenAI

    def keys(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "coop", "keys", *args],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def create(self, name: str, *args: str) -> str:
        made = self.keys("create", "--name", name, *args, "--json")
        assert made.returncode == 0, made.stderr
        return str(json.loads(made.stdout)["key"])

    def listed(self) -> dict[str, Any]:
        result = self.keys("list", "--json")
        assert result.returncode == 0, result.stderr
        return {row["name"]: row for row in json.loads(result.stdout)}


def chat(http: httpx.Client, url: str, key: str, text: str = "hi") -> httpx.Response:
    return http.post(
        url + "/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": text}]},
        headers={"authorization": f"Bearer {key}"},
    )


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp(f"replicas-{request.param}")
    redis: RedisServer | None = None
    if request.param == "redis":
        redis = RedisServer(folder / "redis-data")  # skips when redis-server is missing
        (folder / "redis-data").mkdir()
        redis.start()
        state = f'[state]\nbackend = "redis"\nurl = "{redis.url}"\nprefix = "coop-test:"\n'
    else:
        state = '[state]\nbackend = "sqlite"\n'  # coop-state.sqlite3 beside coop.toml
    with FakeOpenAI() as up:
        (folder / "coop.toml").write_text(
            '[server]\naccess_log = "off"\n\n'
            f"{state}\n"
            "[endpoints.fake]\n"
            'provider = "gwtest-openai"\n'
            f'base_url = "{up.base_url}"\n'
            'api_keys = ["sk-upstream"]\n'
            "health_check_interval = 0\n\n"
            "[models.m]\n"
            'endpoint = "fake"\n'
            'path = "gpt-4o-mini"\n'
            "price = { input = 1000.0, output = 1000.0 }\n",
            encoding="utf-8",
        )
        dist = make_dist(folder / "dist", "llm-coop-gwtest", "coop_gwtest_provider", PROVIDER)
        env = {k: v for k, v in os.environ.items() if k != "COOP_CONFIG"}
        env |= {"PYTHONPATH": str(dist), "XDG_CONFIG_HOME": str(folder / ".xdg")}
        served: list[Served] = []
        try:
            for _ in range(REPLICAS):
                proc = subprocess.Popen(
                    [sys.executable, "-m", "coop", "serve", "--port", "0"],
                    cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                )  # fmt: skip
                served.append(Served(proc))
            urls = [s.url() for s in served]
            yield Cluster(folder, env, urls, up)
        finally:
            for s in served:
                if s.proc.poll() is None:
                    s.proc.terminate()
                    s.wait()
            if redis is not None:
                redis.stop()
        logs = "".join(line for s in served for line in s.stderr)
        assert "Traceback" not in logs, logs[-3000:]


def _wait_all_know(cluster: Cluster, key: str) -> None:
    """Until every replica asks for keys and takes this one (GET /models: not counted)."""
    deadline = time.monotonic() + BOUND

    def status(http: httpx.Client, url: str, given: str) -> int:
        headers = {"authorization": f"Bearer {given}"}
        return http.get(url + "/models", headers=headers).status_code

    with httpx.Client(timeout=BOUND) as http:
        for url in cluster.urls:
            while status(http, url, "sk-coop-bogus") != 401 or status(http, url, key) != 200:
                assert time.monotonic() < deadline, f"{url} never took the key"
                time.sleep(0.05)


def test_a_rate_limit_holds_in_total_across_replicas(cluster: Cluster) -> None:
    key = cluster.create("rpm-ten", "--rpm", "10")
    _wait_all_know(cluster, key)  # GET /models is not counted against rpm
    with httpx.Client(timeout=BOUND) as http, ThreadPoolExecutor(4) as pool:
        statuses = list(
            pool.map(lambda i: chat(http, cluster.urls[i % REPLICAS], key).status_code, range(20))
        )
    assert statuses.count(200) == 10, statuses
    assert statuses.count(429) == 10, statuses


def test_spend_adds_up_across_replicas(cluster: Cluster) -> None:
    key = cluster.create("spender", "--budget", "100")
    _wait_all_know(cluster, key)
    costs = []
    with httpx.Client(timeout=BOUND) as http:
        for i in range(6):
            answer = chat(http, cluster.urls[i % REPLICAS], key, f"request number {i}")
            assert answer.status_code == 200, answer.text
            costs.append(float(answer.headers["x-coop-cost"]))
    row = cluster.listed()["spender"]  # a budget's spend: written at once
    assert row["spend"] == pytest.approx(sum(costs), rel=1e-6)
    deadline = time.monotonic() + BOUND  # the counters: every sync_interval
    while row["requests"] != 6:
        assert time.monotonic() < deadline, row
        time.sleep(0.2)
        row = cluster.listed()["spender"]


def test_a_spent_budget_is_refused_by_every_replica(cluster: Cluster) -> None:
    key = cluster.create("capped", "--budget", "0.005", "--period", "day")
    _wait_all_know(cluster, key)
    with httpx.Client(timeout=BOUND) as http:
        assert chat(http, cluster.urls[0], key, "one two three").status_code == 200
        for url in cluster.urls:
            refused = chat(http, url, key)
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"]["type"] == "insufficient_quota"
            assert refused.headers["x-should-retry"] == "false"


def test_a_revocation_reaches_every_replica_within_a_second(cluster: Cluster) -> None:
    key = cluster.create("leaving")
    _wait_all_know(cluster, key)
    with httpx.Client(timeout=BOUND) as http:
        for url in cluster.urls:
            assert chat(http, url, key).status_code == 200
        revoked = cluster.keys("revoke", "--name", "leaving")
        assert revoked.returncode == 0, revoked.stderr
        since = time.monotonic()
        seen: dict[str, float] = {}
        while len(seen) < REPLICAS and time.monotonic() - since < BOUND:
            for url in cluster.urls:
                if url not in seen and chat(http, url, key).status_code == 401:
                    seen[url] = time.monotonic() - since
            time.sleep(0.02)
    assert len(seen) == REPLICAS, seen
    assert max(seen.values()) < 1.0, seen


def test_two_processes_creating_one_name_at_once_one_wins(cluster: Cluster) -> None:
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: cluster.keys("create", "--name", "twin"), range(2)))
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 2], [r.stderr for r in results]
    loser = next(r for r in results if r.returncode == 2)
    assert "a key named 'twin' already exists" in loser.stderr
    assert "Traceback" not in loser.stderr
    assert cluster.listed()["twin"]["status"] == "active"
