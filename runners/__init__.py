"""Shard runners: leases with fencing, dispatch, the durable workflow engine, the agent workflow.

    component     Runner: the process shell (leases, watchdog, discovery, notifications)
    shard_plan    which shards a runner holds and must let go: pure bookkeeping
    membership    who the runners are (``cluster_runners``)
    dispatcher    which due runs to advance, within an admission bound
    api           the seam between the runner and the engine
    engine/       the durable workflow engine (knows no workflow)
    agent/        the agent workflow (on the engine)
    workflows     the workflows a runner process runs
"""
