"""Shard runners: leases with fencing, the durable workflow engine, and the agent workflow."""
