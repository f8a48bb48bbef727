"""Stack configuration: every stack file parses, and bad settings fail with a clear line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import (
    ConfigError,
    StackSecrets,
    connection_budget,
    parse,
    parse_authorized_network,
    parse_image,
)
from tests.infra.infra_resources import run_mock

INFRA = Path(__file__).resolve().parents[2] / "infra"
IMAGE = "us-central1-docker.pkg.dev/agentlane-dev/agentlane/agentlane:0123abc"
CHANNEL = "projects/agentlane-prod/notificationChannels/42"
SECRETS = StackSecrets(db_password="pw", openai_api_key="sk-test", anchor_signing_key="k")


def _stack_file(stack: str) -> tuple[str, str, dict[str, Any]]:
    config = yaml.safe_load((INFRA / f"Pulumi.{stack}.yaml").read_text())["config"]
    raw = {k.removeprefix("agentlane:"): v for k, v in config.items() if k.startswith("agentlane:")}
    # Set per deploy, like the image: where a protected stack's alerts go.
    channels = [CHANNEL] if raw["deletionProtection"] else []
    return config["gcp:project"], config["gcp:region"], {
        **raw, "image": IMAGE, "notificationChannels": channels
    }


def _parse(stack: str = "dev", **changes: Any) -> Any:
    project, region, raw = _stack_file(stack)
    return parse(
        stack=stack, project=project, region=region, raw={**raw, **changes}, secrets=SECRETS
    )


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_stack_file_parses(stack: str) -> None:
    config = _parse(stack)
    assert config.image_tag == "0123abc"
    assert config.deletion_protection is (stack == "prod")
    assert config.database.high_availability is (stack != "dev")
    assert config.runtime.topic == "agent-events"


@pytest.mark.parametrize(
    "image",
    [
        "us-central1-docker.pkg.dev/p/agentlane/agentlane:0123abcd",
        "us-central1-docker.pkg.dev/p/agentlane/agentlane:" + "a" * 40,
        "us-central1-docker.pkg.dev/p/agentlane/agentlane:0123abcd@sha256:" + "f" * 64,
    ],
)
def test_git_sha_tagged_images_are_accepted(image: str) -> None:
    assert parse_image(image) == image


@pytest.mark.parametrize(
    ("image", "says"),
    [
        ("us-central1-docker.pkg.dev/p/agentlane/agentlane:latest", "':latest'"),
        ("us-central1-docker.pkg.dev/p/agentlane/agentlane", "GIT_SHA"),
        ("us-central1-docker.pkg.dev/p/agentlane/agentlane:v1.2", "GIT_SHA"),
        ("agentlane:0123abcd", "GIT_SHA"),
    ],
)
def test_mutable_or_untagged_images_are_rejected(image: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_image(image)


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "::/0"])
def test_control_plane_is_never_open_to_everyone(cidr: str) -> None:
    with pytest.raises(ConfigError, match="opens the control plane"):
        parse_authorized_network({"name": "all", "cidr": cidr})


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"masterAuthorizedNetworks": []}, "masterAuthorizedNetworks"),
        ({"databse": {}}, "unknown key"),
        ({"database": {"tier": "db-custom-1-3840", "highAvailability": "yes"}}, "highAvailability"),
        ({"negZones": ["europe-west1-b"]}, "negZones"),
        ({"billing": {"account": "0A-1B", "projectNumber": "p-1", "monthlyAmount": 5}},
         "billing"),
        ({"billing": {"account": "0A-1B", "projectNumber": "123"}}, "billing"),
        (
            {
                "gateway": {
                    "minReplicas": 1,
                    "maxReplicas": 3,
                    "resources": {"cpu": "1", "memory": "1Gi"},
                }
            },
            "minReplicas",
        ),
    ],
)
def test_invalid_settings_name_the_key(changes: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        _parse(**changes)


def test_a_protected_stack_must_send_its_alerts_somewhere() -> None:
    assert _parse("prod").notification_channels == (CHANNEL,)
    with pytest.raises(ConfigError, match="notificationChannels: a stack with deletionProtection"):
        _parse("prod", notificationChannels=[])
    assert _parse("dev", notificationChannels=[]).notification_channels == ()


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_stacks_connections_fit_its_database(stack: str) -> None:
    """The worst case (every replica at its maximum, every pool full, the jobs, the reserve)
    against the max_connections the stack sets on the instance."""
    config = _parse(stack)
    worst = connection_budget(config)
    assert worst.fits(), worst.describe()
    # Cloud Run's instances are the largest share in prod: 50 x (6 + 1).
    assert worst.parts["command service"] == (
        config.command_service.max_instances * (config.command_service.db_pool + 1)
    )


def test_a_stack_that_would_exhaust_the_database_is_refused_with_its_arithmetic() -> None:
    prod = _stack_file("prod")[2]
    scaled = {**prod["commandService"], "maxInstances": 200}
    with pytest.raises(ConfigError, match=r"database.maxConnections: \d+ connections at most "
                       r"\(runners 78, projectors 24, gateways 120, command service 1400"):
        _parse("prod", commandService=scaled)


def test_the_program_refuses_a_latest_image_before_declaring_anything() -> None:
    result = run_mock(("dev",), {"agentlane:image": "us-docker.pkg.dev/p/r/agentlane:latest"})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "config error: image: 'us-docker.pkg.dev/p/r/agentlane:latest' uses ':latest'; "
        "tag it with the git sha"
    )
    assert result.stdout == ""
