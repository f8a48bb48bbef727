"""Tests of the Pulumi program (infra/): mocked runs per stack, manifests, policy rules."""
