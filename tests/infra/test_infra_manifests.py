"""The Kubernetes objects of every stack validate, strictly, against the API schemas offline."""

from __future__ import annotations

import kubernetes_validate
import pytest

from tests.infra.infra_resources import StackRun

# GKE's regular channel; strict mode rejects any field the schema does not know (a snake_case
# key that escaped Pulumi's translation would fail here).
KUBERNETES_VERSION = "1.33.0"
# Custom resources have no schema in kubernetes-validate; their shape is GKE's contract.
CUSTOM_KINDS = frozenset({"PodMonitoring"})


def test_every_manifest_is_valid_in_strict_mode(run: StackRun) -> None:
    manifests = [r.inputs for r in run.kubernetes()]
    assert {m["kind"] for m in manifests} >= {"StatefulSet", "Deployment", "Job", "Service"}
    skipped = set()
    for manifest in manifests:
        if manifest["kind"] in CUSTOM_KINDS:
            skipped.add(manifest["kind"])
            continue
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            name = manifest["metadata"]["name"]
            pytest.fail(f"{manifest['kind']}/{name}: {exc.message} at {list(exc.path)}")
    assert skipped == CUSTOM_KINDS


def test_strict_validation_catches_an_untranslated_field(run: StackRun) -> None:
    """Guards the test above: a snake_case key must be rejected, not ignored."""
    (sts,) = [r.inputs for r in run.kubernetes() if r.inputs["kind"] == "StatefulSet"]
    broken = {**sts, "spec": {**sts["spec"], "service_name": sts["spec"]["serviceName"]}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
