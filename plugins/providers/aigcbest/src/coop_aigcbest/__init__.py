"""The ``aigcbest`` provider: AIGC Best, an OpenAI-compatible gateway to many models.

The protocol is :class:`coop.OpenAICompatibleProvider`'s unchanged; this plugin
carries the preset the original system was built around (base URL, the Qwen3 and
DeepSeek catalogue with context windows and prices) so ``coop config preset
--name aigcbest --api-key ...`` gives a working setup in one command. Qwen3's
thinking output arrives as ``reasoning_content`` and is passed through as it is.
"""

from __future__ import annotations

from typing import Any

from coop import ModelInfo, OpenAICompatibleProvider, Preset, hookimpl

__all__ = ["PRESET", "AIGCBestProvider"]

PRESET = Preset(
    name="aigcbest",
    base_url="https://api2.aigcbest.top/v1",
    api_key_env="AIGCBEST_API_KEY",
    description="AIGC Best gateway (Qwen3, DeepSeek-V3; OpenAI-compatible).",
    models=(
        ModelInfo("Qwen/Qwen3-8B", 32_768, 0.30, 0.60, tier="light", alias="qwen3_8b"),
        ModelInfo("Qwen/Qwen3-32B", 32_768, 0.60, 2.40, tier="reasoning", alias="qwen3_32b"),
        ModelInfo(
            "deepseek-ai/DeepSeek-V3", 65_536, 0.30, 1.20, tier="complex", alias="deepseek_v3"
        ),
    ),
)


class AIGCBestProvider(OpenAICompatibleProvider):
    """AIGC Best's ``/chat/completions``: the OpenAI protocol with this preset."""

    name = "aigcbest"
    preset = PRESET


@hookimpl
def coop_register_providers(register: Any) -> None:
    register(AIGCBestProvider)
