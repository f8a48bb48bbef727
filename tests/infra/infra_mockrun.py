"""Run the Pulumi program under mocks for some stacks and print what each registered, as JSON.

Usage: python infra_mockrun.py STACK[,STACK...] [JSON_CONFIG_OVERRIDES]

Outside pytest because pytest turns pulumi_gcp's import-time DeprecationWarnings into errors.
Each stack runs in a fresh `contextvars.Context`: the Pulumi runtime keeps its settings, root
stack and config in context variables, so an empty context is a clean runtime, and one process
pays the (large) pulumi_gcp import once. Each registration is recorded with its inputs (secrets
unwrapped), provider reference, parent and dependency URNs.
"""

from __future__ import annotations

import contextvars
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks, rpc

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from infra.config import ConfigError, load  # noqa: E402
from infra.program import build  # noqa: E402

PROJECT = "agentlane"
TEST_SECRETS = {
    "agentlane:dbPassword": "p@ss/word+with:url&chars",
    "agentlane:openaiApiKey": "sk-test-not-a-real-key",
    "agentlane:anchorSigningKey": "-----BEGIN PRIVATE KEY-----\nnot-a-key\n",
}
TEST_IMAGE = "us-central1-docker.pkg.dev/agentlane-test/agentlane/agentlane:0123abcd"
TEST_CHANNEL = "projects/agentlane-test/notificationChannels/123"
# Pulumi marks a secret value in a property struct with this signature key.
_SECRET_SIG = "4dabf18193072939515e22adb298388d"


def stack_config(stack: str, overrides: dict[str, Any]) -> dict[str, str]:
    """The stack file's config as the engine passes it: strings, objects as JSON."""
    raw = yaml.safe_load((REPO / "infra" / f"Pulumi.{stack}.yaml").read_text())["config"]
    merged = {**raw, **TEST_SECRETS, **_deploy_time(raw), "agentlane:image": TEST_IMAGE,
              **overrides}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in merged.items()}


def _deploy_time(raw: dict[str, Any]) -> dict[str, Any]:
    """What an operator sets per deploy beside the secrets: prod's alert channel."""
    if raw.get("agentlane:deletionProtection", True) is False:
        return {}
    return {"agentlane:notificationChannels": [TEST_CHANNEL]}


def plain(value: Any) -> Any:
    """Unwrap secrets; protobuf Structs carry every number as a double, restore integers."""
    if isinstance(value, dict):
        if _SECRET_SIG in value:
            return plain(value.get("value"))
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class Outputs(mocks.Mocks):
    """Computed outputs the program reads (emails, endpoints, ids), shaped like GCP's."""

    def __init__(self, project: str) -> None:
        self.project = project

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        p, i = self.project, args.inputs
        state = dict(i)
        resource_id = f"{args.name}-id"
        match args.typ:
            case "gcp:serviceaccount/account:Account":
                email = f"{i['accountId']}@{p}.iam.gserviceaccount.com"
                state |= {"email": email, "name": f"projects/{p}/serviceAccounts/{email}"}
            case "gcp:container/cluster:Cluster":
                state |= {
                    "endpoint": "203.0.113.10",
                    "masterAuth": {"clusterCaCertificate": "Q0E="},
                    # A regional Autopilot cluster reports the zones its nodes may run in.
                    "nodeLocations": [f"{i['location']}-{z}" for z in ("f", "b", "c")],
                }
            case "gcp:sql/databaseInstance:DatabaseInstance":
                state |= {
                    "privateIpAddress": "10.100.0.3",
                    "serviceAccountEmailAddress": "p1-a@gcp-sa-cloud-sql.iam.gserviceaccount.com",
                    "dnsName": "0123456789ab.abcdef012345.us-central1.sql.goog.",
                    "serverCaCerts": [
                        {"cert": "-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n"}
                    ],
                }
            case "gcp:projects/serviceIdentity:ServiceIdentity":
                state |= {"email": "service-123456789@gcp-sa-pubsub.iam.gserviceaccount.com"}
            case "gcp:projects/iAMCustomRole:IAMCustomRole":
                state |= {"name": f"projects/{p}/roles/{i['roleId']}"}
            case "gcp:secretmanager/secret:Secret":
                resource_id = f"projects/{p}/secrets/{i['secretId']}"
            case "gcp:pubsub/topic:Topic":
                resource_id = f"projects/{p}/topics/{i['name']}"
            case "gcp:cloudrunv2/service:Service":
                state |= {"uri": f"https://{i['name']}-uc.a.run.app"}
            case "gcp:compute/globalAddress:GlobalAddress":
                state |= {"address": "198.51.100.7"}
            case "gcp:artifactregistry/repository:Repository":
                state |= {"registryUri": f"{i['location']}-docker.pkg.dev/{p}/{i['repositoryId']}"}
        return resource_id, state

    def call(self, args: mocks.MockCallArgs) -> tuple[dict[str, Any], None]:
        raise AssertionError(f"the program must not call provider functions: {args.token}")


class Recorder(mocks.MockMonitor):
    def __init__(self, outputs: mocks.Mocks) -> None:
        super().__init__(outputs)
        self.records: list[dict[str, Any]] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        self.records.append(
            {
                "type": request.type,
                "name": request.name,
                "urn": response.urn,
                "custom": request.custom,
                "parent": request.parent,
                # "URN::id" of the explicit provider; empty means the default provider.
                "provider": request.provider.rsplit("::", 1)[0] if request.provider else "",
                "dependencies": sorted(request.dependencies),
                "retainOnDelete": bool(request.retainOnDelete),
                "inputs": plain(rpc.deserialize_properties(request.object)),
            }
        )
        return response


def run(stack: str, overrides: dict[str, Any]) -> dict[str, Any]:
    config = stack_config(stack, overrides)
    pulumi.runtime.set_all_config(config, list(TEST_SECRETS))
    recorder = Recorder(Outputs(config["gcp:project"]))
    pulumi.runtime.set_mocks(
        recorder.mocks, project=PROJECT, stack=stack, preview=False, monitor=recorder
    )

    @pulumi.runtime.test
    def program() -> None:
        build(load())

    program()
    return {
        "stack": stack,
        "project": config["gcp:project"],
        "resources": recorder.records,
        "labelArgs": label_args({r["type"] for r in recorder.records}),
    }


def label_args(types: set[str]) -> dict[str, list[str]]:
    """For each GCP type, which label arguments its pulumi_gcp class accepts."""
    found = {}
    for token in sorted(t for t in types if t.startswith("gcp:")):
        module, _, cls = token.removeprefix("gcp:").partition(":")
        klass = getattr(sys.modules[f"pulumi_gcp.{module.split('/')[0]}"], cls)
        params = inspect.signature(klass._internal_init).parameters
        found[token] = sorted({"labels", "user_labels", "resource_labels"} & set(params))
    return found


def main(stacks: list[str], overrides: dict[str, Any]) -> int:
    runs = {}
    for stack in stacks:
        try:
            runs[stack] = contextvars.Context().run(run, stack, overrides)
        except ConfigError as exc:
            print(f"config error: {exc}", file=sys.stderr)
            return 2
    json.dump(runs, sys.stdout)
    return 0


if __name__ == "__main__":
    overrides = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    sys.exit(main(sys.argv[1].split(","), overrides))
