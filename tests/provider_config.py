"""One endpoint and its models as a SystemConfig: the setup every provider plugin's engine test needs."""

from __future__ import annotations

from coop import SystemConfig


def one_endpoint(
    provider: str, base_url: str, key: str, models: dict[str, str], *, name: str | None = None
) -> SystemConfig:
    """Endpoint ``name`` (default: the provider's name) with one key and no health checks;
    ``models`` maps each logical model to its upstream path there."""
    endpoint = name or provider
    return SystemConfig.from_dict(
        {
            "endpoints": {
                endpoint: {
                    "provider": provider,
                    "base_url": base_url,
                    "api_keys": [key],
                    "health_check_interval": 0,
                }
            },
            "models": {m: {"endpoint": endpoint, "path": path} for m, path in models.items()},
        }
    )
