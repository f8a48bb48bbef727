"""agentlane's Pulumi program: every GCP and Kubernetes resource of one stack.

`__main__.py` is the Pulumi entry point; `program.build` wires one component per concern
(`components/`); `policy/` holds the rules that `pulumi preview --policy-pack` enforces.
"""
