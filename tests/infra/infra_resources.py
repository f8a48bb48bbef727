"""The mocked program's registrations, as read by the infra tests.

`run_stacks` runs `infra_mockrun.py` (one process for all stacks) and parses what each stack
recorded; `StackRun` answers the questions the tests ask of one stack.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["K8S_PROVIDER", "Resource", "StackRun", "run_mock", "run_stacks"]

RUNNER = Path(__file__).with_name("infra_mockrun.py")
K8S_PROVIDER = "pulumi:providers:kubernetes"
TIMEOUT_S = 120


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    urn: str
    custom: bool
    parent: str
    provider: str
    dependencies: tuple[str, ...]
    inputs: dict[str, Any]
    #: ``pulumi destroy`` leaves it in place.
    retain_on_delete: bool = False

    def get(self, *path: str) -> Any:
        value: Any = self.inputs
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value


@dataclass(frozen=True)
class StackRun:
    stack: str
    project: str
    resources: tuple[Resource, ...]
    # GCP type -> the label arguments its pulumi_gcp class accepts.
    label_args: dict[str, list[str]]

    def of_type(self, *types: str) -> list[Resource]:
        return [r for r in self.resources if r.type in types]

    def one(self, type_: str, name: str | None = None) -> Resource:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {type_} {name or ''}, found {len(found)}"
        return found[0]

    def kubernetes(self) -> list[Resource]:
        return [r for r in self.resources if r.type.startswith("kubernetes:")]

    def kube_named(self, kind: str, name: str) -> Resource:
        """A Kubernetes object by kind and metadata.name."""
        found = [
            r
            for r in self.kubernetes()
            if r.inputs.get("kind") == kind and r.get("metadata", "name") == name
        ]
        assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
        return found[0]


def _stack_run(payload: dict[str, Any]) -> StackRun:
    return StackRun(
        stack=payload["stack"],
        project=payload["project"],
        resources=tuple(
            Resource(
                type=r["type"],
                name=r["name"],
                urn=r["urn"],
                custom=r["custom"],
                parent=r["parent"],
                provider=r["provider"],
                dependencies=tuple(r["dependencies"]),
                inputs=r["inputs"],
                retain_on_delete=r.get("retainOnDelete", False),
            )
            for r in payload["resources"]
        ),
        label_args=payload["labelArgs"],
    )


def run_mock(
    stacks: tuple[str, ...], overrides: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    """Run the mocked program; `overrides` replace stack-file config keys."""
    args = [sys.executable, str(RUNNER), ",".join(stacks), json.dumps(overrides)]
    return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


def run_stacks(
    stacks: tuple[str, ...], overrides: dict[str, Any] | None = None
) -> dict[str, StackRun]:
    """Every stack's registrations; fails with the runner's stderr."""
    result = run_mock(stacks, overrides or {})
    if result.returncode != 0:
        raise AssertionError(f"mocked `pulumi up` failed:\n{result.stderr}")
    return {stack: _stack_run(payload) for stack, payload in json.loads(result.stdout).items()}
