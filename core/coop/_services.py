"""What an application service implements: a task-specific use of the models."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

__all__ = ["Service", "ServiceResult"]


@attrs.define
class ServiceResult:
    service: str
    text: str
    data: dict[str, Any] = attrs.field(factory=dict)
    models: list[str] = attrs.field(factory=list)
    cost: float = 0.0
    latency: float = 0.0


class Service(abc.ABC):
    """Base class of service plugins; set a unique ``name`` (the ``service_type``)."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    @abc.abstractmethod
    async def process(
        self, content: str, parameters: Mapping[str, Any], context: Any
    ) -> ServiceResult:
        """Process ``content``; ``context`` gives the engine, router and scheduler."""
