"""The lab: simulated vSphere sites for demos, tests and the benchmark.

`simulator` builds and runs govmomi's vCenter/ESXi simulator (through the Go launcher in
`vcsim/`), `changelog` writes the per-disk change logs from which that launcher answers
QueryChangedDiskAreas. Nothing in the replication engine imports this package: the engine talks to
the simulator over SOAP exactly as it would to a real vCenter.
"""
