"""core.jobs: running replication jobs against vSphere, VM by VM, into restore points.

`runner.JobRunner` runs one job (a session): it expands the job's sources (`sources`), and hands
each VM to a `vmtask.VmReplication` within the proxies' task limits. A VM's task snapshots the
source, creates the replica VM on its first run (`replica_vm`), replicates each disk with the
block engine (`core.engine`) from a source opened by the chosen transport mode (`transport`),
records the restore point as a snapshot on the replica and in the store, applies retention, and
removes its source snapshot whatever happens. Progress goes out as `events`.
"""
