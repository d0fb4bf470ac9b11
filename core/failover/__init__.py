"""core.failover: the replica operations of the DR site, on top of what replication runs made.

Replication (core.jobs) leaves per replica a VM on the DR site, one snapshot per restore point and,
per disk, a chain folder of restore points (core.replica.chain). This package turns that into a
running VM and back: failover now or planned (`operations`), undo and permanent failover, test
failover on an isolated network (`drill`, one per test or one shared by a plan's test), failback to
the original VM, to the original VM restored in another place or to a new one (`failback`); re-IP
by guest customization (`reip`) and the network mapping re-checked before power-on (`networks`).
The running replica's disks are hosted-sparse children of the chosen point (`running`), and what an
operation must remember between commands is written beside the replica (`records`), phase by phase,
so that an operation a crash interrupted is finished or rolled back by the next one on the replica
(`recovery`). Every operation is a session of the replica's job, logged in an administrator's words
(`session`).
"""
