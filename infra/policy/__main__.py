"""Policy pack: `pulumi preview --policy-pack infra/policy` enforces every rule in rules.py.

Never import this module from tests: `PolicyPack(...)` starts the analyzer server and blocks.
"""

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)
from rules import RULES, Rule  # the pack's directory is the import root when Pulumi runs it


def _policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in rule.check(args.resource_type, args.props):
            report_violation(message, None)

    return ResourceValidationPolicy(name=rule.name, description=rule.description, validate=validate)


PolicyPack(
    name="agentlane",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[_policy(rule) for rule in RULES],
)
