"""``GET /dashboard`` in a real headless Chromium (Debian's ``chromium``, installed by ``make install``).

The page is served by a gateway on loopback with a fake upstream; Chromium runs its JS, which
polls ``/status``, and the DOM it dumps must name every configured model and cooperation, then
show the request count once traffic went through. A screenshot is kept under the test's tmp
dir and copied to ``tests/artifacts/dashboard.png`` (ignored by git).
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from fakes import FakeOpenAI
from test_gateway import GATEWAY_KEYS, chat_body, gateway_config, serve_in_thread

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_TIMEOUT = 25.0


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "chromium is not installed: the dashboard test needs Debian's headless Chromium; "
            "run `make install` as root (it runs `apt-get install -y chromium`) or install it "
            "yourself with `apt-get install -y chromium`"
        )
    return path


def _browse(url: str, tmp: Path, *extra: str, budget_ms: int = 3000) -> str:
    """Load ``url`` in headless Chromium, let its JS run ``budget_ms`` of virtual time."""
    profile = tmp / "profile"
    profile.mkdir(exist_ok=True)
    args = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}",
        *extra,
        url,
    ]
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT, check=False
    )
    assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, "the page logged to the console:\n" + "\n".join(console)
    return done.stdout


def _requests_shown(dom: str) -> int:
    match = re.search(r'id="kpi-requests" data-value="(\d+)"', dom)
    assert match, f"no request count in the page: {dom[:3000]}"
    return int(match.group(1))


def test_dashboard_shows_models_then_traffic(tmp_path: Path) -> None:
    with FakeOpenAI() as up, serve_in_thread(gateway_config(up)) as gw:
        page = httpx.get(gw.url + "/dashboard", timeout=10)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]

        # no traffic yet: every model and cooperation shown, empty states, no count
        dom = _browse(gw.url + "/dashboard", tmp_path, "--dump-dom")
        for model in ("m", "big"):
            assert f'class="card model" data-model="{model}"' in dom, f"model {model!r} missing"
        assert 'data-cooperation="council"' in dom
        assert "live" in dom, "the page did not read /status"
        assert _requests_shown(dom) == 0
        assert "no traffic yet" in dom

        with gw.http() as http:
            for i in range(5):
                assert http.post("/v1/chat/completions", json=chat_body(f"hi {i}")).is_success
            assert http.post("/v1/chat/completions", json=chat_body(model="big")).is_success

        dom = _browse(gw.url + "/dashboard", tmp_path, "--dump-dom")
        assert _requests_shown(dom) == 6
        counts = {
            html.unescape(name): int(n)
            for name, n in re.findall(
                r'class="card model" data-model="([^"]+)".*?class="model-requests" data-value="(\d+)"',
                dom,
                re.S,
            )
        }
        assert counts == {"big": 1, "m": 5}

        # traffic while the screenshot is taken, so that its charts have a line
        stop = threading.Event()

        def traffic() -> None:
            with gw.http() as http:
                while not stop.is_set():
                    http.post("/v1/chat/completions", json=chat_body(model="big"))
                    time.sleep(0.02)

        sender = threading.Thread(target=traffic, daemon=True)
        sender.start()
        shot = tmp_path / "dashboard.png"
        try:
            _browse(
                gw.url + "/dashboard",
                tmp_path,
                f"--screenshot={shot}",
                "--window-size=1280,900",
                "--hide-scrollbars",
                budget_ms=8000,
            )
        finally:
            stop.set()
            sender.join(10)
        assert shot.stat().st_size > 10_000, "the screenshot is blank"
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(shot, ARTIFACTS / "dashboard.png")


def test_dashboard_with_keys_asks_for_one_and_leaks_nothing(tmp_path: Path) -> None:
    with FakeOpenAI() as up, serve_in_thread(gateway_config(up, api_keys=GATEWAY_KEYS)) as gw:
        page = httpx.get(gw.url + "/dashboard", timeout=10)
        assert page.status_code == 200  # the page is public, it holds no data
        assert httpx.get(gw.url + "/status", timeout=10).status_code == 401
        dom = _browse(gw.url + "/dashboard", tmp_path, "--dump-dom")
        assert "key needed" in dom
        assert 'class="card model"' not in dom
        assert up.base_url not in dom
