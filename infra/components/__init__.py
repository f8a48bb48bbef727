"""One `pulumi.ComponentResource` per concern, plus the shared names, labels and env tables."""
