"""The cooperation scheduler through the real engine, on simulated and replayed models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import coop
import pytest
from coop import (
    CooperationError,
    CooperationScheduler,
    OpenAIEngine,
    SystemConfig,
    UnknownModelError,
    UnknownPluginError,
    ValidationError,
)

pytestmark = pytest.mark.anyio


def sim_config(**per_model: dict[str, Any]) -> SystemConfig:
    return SystemConfig.from_dict(
        {
            "endpoints": {
                "sim": {
                    "provider": "simulated",
                    "health_check_interval": 0,
                    "options": {"models": per_model},
                },
            },
            "models": {
                name: {"endpoint": "sim", "path": name, "price": {"input": 1.0, "output": 2.0}}
                for name in ("sim-light", "sim-reasoning", "sim-large")
            },
        }
    )


async def test_parallel_voting_runs_models_concurrently() -> None:
    config = sim_config(
        **{m: {"latency": 0.2} for m in ("sim-light", "sim-reasoning", "sim-large")}
    )
    async with OpenAIEngine(config) as engine:
        starts: dict[str, float] = {}
        ends: dict[str, float] = {}

        def progress(event: str, data: dict[str, Any]) -> None:
            clock = anyio.current_time()
            (starts if event == "started" else ends)[data["model"]] = clock

        result = await CooperationScheduler(engine).create_parallel_task(
            "What is 17 * 3?",
            ["sim-light", "sim-reasoning", "sim-large"],
            "voting",
            on_progress=progress,
        )
    # Every model started before any finished: they ran side by side, not one after another.
    assert max(starts.values()) < min(ends.values())
    assert "51" in result.text
    assert result.confidence == 1.0
    assert len(result.outputs) == 3 and all(o.success for o in result.outputs)
    assert result.cost == pytest.approx(sum(o.cost for o in result.outputs)) and result.cost > 0
    assert result.to_dict()["usage"]["total_tokens"] > 0


async def test_quorum_and_failures_are_reported() -> None:
    config = sim_config(**{"sim-large": {"failure_rate": 1.0}})
    async with OpenAIEngine(config, retry=coop.RetryPolicy(max_attempts=1)) as engine:
        scheduler = CooperationScheduler(engine)
        result = await scheduler.create_parallel_task(
            "2+2?", ["sim-light", "sim-large"], "voting", quorum=1
        )
        assert "sim-large" in result.failed and "simulated failure" in result.failed["sim-large"]
        with pytest.raises(CooperationError) as caught:
            await scheduler.create_parallel_task(
                "2+2?", ["sim-light", "sim-large"], "voting", quorum=2
            )
        assert "sim-large" in caught.value.failures


async def test_every_model_failing_carries_each_failure() -> None:
    config = sim_config(**{m: {"failure_rate": 1.0} for m in ("sim-light", "sim-reasoning")})
    async with OpenAIEngine(config, retry=coop.RetryPolicy(max_attempts=1)) as engine:
        with pytest.raises(CooperationError) as caught:
            await CooperationScheduler(engine).create_parallel_task(
                "hi", ["sim-light", "sim-reasoning"]
            )
    assert set(caught.value.failures) == {"sim-light", "sim-reasoning"}


async def test_per_model_timeout() -> None:
    config = sim_config(**{"sim-large": {"latency": 5.0}})
    async with OpenAIEngine(config) as engine:
        result = await CooperationScheduler(engine).create_parallel_task(
            "3*3", ["sim-light", "sim-large"], "voting", timeout=0.2
        )
    assert result.failed == {"sim-large": "timed out after 0.2s"}
    assert "9" in result.text


async def test_bad_cooperations_name_the_valid_choices() -> None:
    async with OpenAIEngine(sim_config()) as engine:
        scheduler = CooperationScheduler(engine)
        with pytest.raises(UnknownModelError) as model_error:
            await scheduler.create_parallel_task("q", ["sim-light", "gpt-9"])
        assert "sim-light" in str(model_error.value)
        with pytest.raises(UnknownPluginError) as strategy_error:
            await scheduler.create_parallel_task("q", ["sim-light"], "votin")
        assert "did you mean 'voting'" in str(strategy_error.value)
        with pytest.raises(ValidationError):
            await scheduler.create_parallel_task("q", [])


async def test_sequential_passes_the_previous_answer_on() -> None:
    async with OpenAIEngine(sim_config()) as engine:
        result = await CooperationScheduler(engine).create_sequential_task(
            "What is 5 + 5?", ["sim-light", "sim-reasoning"]
        )
    assert [o.model for o in result.outputs] == ["sim-light", "sim-reasoning"]
    # The second model saw the first one's answer in its prompt.
    assert result.text.startswith("[simulated sim-reasoning]")


async def test_pipeline_stages_see_earlier_outputs_and_braces_are_safe() -> None:
    seen: list[str] = []
    async with OpenAIEngine(sim_config()) as engine:
        original = engine.chat

        async def spy(request: Any, *, model: str | None = None, **kwargs: Any) -> Any:
            seen.append(request.messages[-1].content)
            return await original(request, model=model, **kwargs)

        engine.chat = spy  # type: ignore[method-assign]
        query = 'Explain {this} and {previous} literally: {"json": [1, 2]}'
        result = await CooperationScheduler(engine).create_pipeline_task(
            query,
            [
                {"model": "sim-reasoning", "task": "analysis"},
                {"model": "sim-light", "task": "summary"},
            ],
        )
    assert [o.stage for o in result.outputs] == ["analysis", "summary"]
    assert query in seen[0] and query in seen[1]
    assert result.outputs[0].text in seen[1]  # the summary stage got the analysis
    assert result.text == result.outputs[1].text


async def test_pipeline_unknown_task_lists_known_ones() -> None:
    async with OpenAIEngine(sim_config()) as engine:
        with pytest.raises(ValidationError) as caught:
            await CooperationScheduler(engine).create_pipeline_task(
                "q", [{"model": "sim-light", "task": "dance"}]
            )
    assert "analysis" in str(caught.value) and caught.value.field == "stages[0].task"


async def test_cancellation_reaches_every_model() -> None:
    config = sim_config(**{m: {"latency": 10.0} for m in ("sim-light", "sim-reasoning")})
    async with OpenAIEngine(config) as engine:
        with anyio.move_on_after(0.2) as scope:
            await CooperationScheduler(engine).create_parallel_task(
                "q", ["sim-light", "sim-reasoning"]
            )
        assert scope.cancelled_caught
        assert all(d.in_flight == 0 for m in engine.models.values() for d in m.deployments)


async def test_configured_cooperation_served_as_a_model() -> None:
    config = SystemConfig.discover(None, env={})  # the embedded default has "council"
    async with coop.Dispatcher(config, health_checks=False) as dispatcher:
        request = coop.parse_chat_request(
            {"model": "council", "messages": [{"role": "user", "content": "12*12?"}]}
        )
        result = await dispatcher.complete(request)
        assert result.model == "council" and "144" in result.text
        assert result.cooperation is not None and result.cooperation.strategy == "voting"
        items = [item async for item in dispatcher.stream(dispatcher.plan(request))]
    notes = [i for i in items if isinstance(i, coop.Progress)]
    chunks = [i for i in items if isinstance(i, coop.ChatChunk)]
    assert notes and "started" in notes[0].text
    assert "144" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def run_coop(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COOP_CONFIG", "BASE_URL")}
    env["XDG_CONFIG_HOME"] = str(cwd / ".xdg")
    return subprocess.run(
        [sys.executable, "-m", "coop", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_record_then_replay_gives_the_same_cooperation(tmp_path: Path) -> None:
    first = run_coop(
        "cooperate",
        "--models",
        "sim-light,sim-reasoning",
        "--record",
        "rec.jsonl",
        "--json",
        "What is 9 * 8?",
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr
    recorded = [json.loads(line) for line in (tmp_path / "rec.jsonl").read_text().splitlines()]
    assert {r["model"] for r in recorded} == {"sim-light", "sim-reasoning"}
    (tmp_path / "coop.toml").write_text(
        '[endpoints.tape]\nprovider = "replay"\noptions = { file = "rec.jsonl" }\n\n'
        '[models.sim-light]\nendpoint = "tape"\n\n[models.sim-reasoning]\nendpoint = "tape"\n\n'
        '[routing]\nlight = "sim-light"\n'
    )
    again = run_coop(
        "cooperate", "--models", "sim-light,sim-reasoning", "--json", "What is 9 * 8?", cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    a, b = json.loads(first.stdout), json.loads(again.stdout)
    assert a["text"] == b["text"] and a["evidence"]["votes"] == b["evidence"]["votes"]
    missing = run_coop(
        "cooperate", "--models", "sim-light", "--json", "a prompt never recorded", cwd=tmp_path
    )
    assert missing.returncode == 1 and "no recording for model 'sim-light'" in missing.stderr


def test_cooperate_cli_errors(tmp_path: Path) -> None:
    unknown = run_coop("cooperate", "--models", "sim-light,nope", "q", cwd=tmp_path)
    assert unknown.returncode == 2 and "model 'nope' does not exist" in unknown.stderr
    bad_strategy = run_coop(
        "cooperate", "--models", "sim-light", "--strategy", "vote", "q", cwd=tmp_path
    )
    assert bad_strategy.returncode == 2 and "unknown strategy 'vote'" in bad_strategy.stderr
    empty = run_coop("cooperate", "--models", ",", "q", cwd=tmp_path)
    assert empty.returncode == 2 and "at least one model" in empty.stderr


def test_cooperate_without_models_runs_the_complex_tier_cooperation(tmp_path: Path) -> None:
    # The embedded default routes complex work to "council": a parallel vote of three models.
    result = run_coop("cooperate", "--json", "What is 9 * 8?", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["name"] == "council" and data["strategy"] == "voting"
    assert {o["model"] for o in data["outputs"]} == {"sim-light", "sim-reasoning", "sim-large"}
    assert "72" in data["text"]
    (tmp_path / "coop.toml").write_text(
        '[endpoints.sim]\nprovider = "simulated"\n\n[models.a]\nendpoint = "sim"\n'
        'path = "sim-light"\n\n[routing]\nlight = "a"\ncomplex = "a"\n'
    )
    plain = run_coop("cooperate", "q", cwd=tmp_path)
    assert plain.returncode == 2 and "--models" in plain.stderr and "Traceback" not in plain.stderr


def test_eval_cooperation_on_recorded_gsm8k(tmp_path: Path) -> None:
    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k_solutions_dev.jsonl"
    if not data.exists():
        pytest.skip("shared data not present")
    models = "6b_finetuning,6b_verification,175b_finetuning,175b_verification"
    result = run_coop("eval", "cooperation", str(data), "--models", models, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["accuracy"] >= report["best_single"]["accuracy"]
    assert report["label_agreement"] > 0.97


async def test_cascade_router_escalates_only_on_disagreement() -> None:
    config = SystemConfig.from_dict(
        {
            "endpoints": {"sim": {"provider": "simulated", "health_check_interval": 0}},
            "models": {
                "cheap": {
                    "endpoint": "sim",
                    "path": "sim-light",
                    "tier": "light",
                    "price": {"input": 0.1, "output": 0.2},
                },
                "strong": {
                    "endpoint": "sim",
                    "path": "sim-large",
                    "tier": "reasoning",
                    "price": {"input": 3.0, "output": 12.0},
                },
            },
            "routing": {
                "router": "cascade",
                "light": "cheap",
                "reasoning": "strong",
                "options": {"cheap": "cheap", "strong": "strong"},
            },
        }
    )
    async with coop.Dispatcher(config, health_checks=False) as dispatcher:
        request = coop.parse_chat_request(
            {"model": "auto", "messages": [{"role": "user", "content": "What is 7 * 8?"}]}
        )
        plan = dispatcher.plan(request)
        assert plan.kind == "cascade" and plan.cascade == ("cheap", "strong", 2)
        result = await dispatcher.run(plan)
        assert result.route is plan.decision  # the decision reported is the one that ran
    # The simulated model answers deterministically, so its samples agree: no escalation.
    assert result.model == "cheap" and "56" in result.text
    assert any("kept the cheap answer" in r for r in result.route.reasons)
    assert result.cost > 0
