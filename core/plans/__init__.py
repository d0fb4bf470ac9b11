"""core.plans: failover plans run, undone and tested, on top of the replica operations.

A plan (core.model.plans) names replicas in priority groups; `resolve` finds each item's
replica, `schedule` brings a group's items up in boot order with their dependencies, delays and
at most `max_parallel` starting at once, recording every step in a plan session
(core.store.plans); `run` drives the replica operations of core.failover through it (failover,
undo, test failover and cleanup), `scripts` runs the pre- and post-scripts, `auto` builds a plan
in one click from a job, a folder or a list of VMs, and `readiness` says whether a plan can run
now and how long it should take.
"""
