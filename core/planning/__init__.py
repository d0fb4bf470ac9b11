"""core.planning: will the replication meet its objectives, and what it would take.

`rpo`: VMs whose newest restore point is older than their job's RPO (the alarms the console and
the service raise). `bandwidth`: per job, the data changed per RPO interval (measured from past
sessions, or probed through CBT without copying anything), the compression ratio seen, and,
against a link speed with throttling windows, the bandwidth the RPO needs, how long the first
full copy takes and whether the job fits its backup window. `backup_source`: a backup made from
a replica is refused, with the reason.
"""
