"""The base of every component: children inherit the component's explicit dependencies.

Pulumi does not pass a component's `depends_on` to its children, so a component created after
the project's APIs would still let its resources race the API enablement; `child()` fixes that.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi

from ..config import StackConfig
from .labels import labels

__all__ = ["Component"]


class Component(pulumi.ComponentResource):
    def __init__(
        self,
        type_name: str,
        name: str,
        config: StackConfig,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"agentlane:infra:{type_name}", name, None, opts)
        self._config = config
        depends = opts.depends_on if opts else None
        if isinstance(depends, pulumi.Resource):
            depends = [depends]
        self._depends_on: list[pulumi.Resource] = (
            [d for d in depends if isinstance(d, pulumi.Resource)]
            if isinstance(depends, Sequence)
            else []
        )

    def child(
        self,
        *,
        depends_on: Sequence[pulumi.Resource] = (),
        provider: pulumi.ProviderResource | None = None,
    ) -> pulumi.ResourceOptions:
        """Options for a child resource: parented here, after the component's dependencies."""
        return pulumi.ResourceOptions(
            parent=self, depends_on=[*self._depends_on, *depends_on], provider=provider
        )

    def labels(self, component: str) -> dict[str, str]:
        return labels(
            env=self._config.stack, component=component, tenant_tier=self._config.tenant_tier
        )
