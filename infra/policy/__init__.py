"""Policy rules for `pulumi preview --policy-pack infra/policy` (pure functions in `rules`)."""
