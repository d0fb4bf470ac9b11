"""The ReplicaDesk service: the scheduler that starts replication jobs with nobody at the console.

`core.service.scheduler.Scheduler` reads jobs and their schedule state from the store and runs
them through `core.jobs.runner.run_job`; `replicadesk service` (`core.cli.service`) drives it in
the foreground, and the console can drive the same object. No Qt here.
"""
