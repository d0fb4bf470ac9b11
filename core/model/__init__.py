"""The typed model of ReplicaDesk's infrastructure, jobs, runs and replicas.

Frozen dataclasses, validated when built: an invalid server, proxy, repository or job cannot
exist, and the error says which field is wrong and why (`InvalidSettingError`). Nothing here
does I/O except `jobfile`'s load/save helpers; `core.store` persists these objects, the job
runner and the console consume them. Modules, one concern each:

    fields       validation helpers shared by all
    secret       Secret (never shown) and Credential
    infra        ManagedServer, BackupProxy, Repository
    objects      ObjectRef (moref + name), SourceSelection with exclusions
    destination  Destination, Placement, per-VM overrides, disk type
    network      NetworkMap: source -> target network, same-name rule
    reip         ReIpRule and the pure `reip()` address computation
    schedule     JobSchedule: triggers, retries, window, next_run / in_window
    job          ReplicationJob and its settings groups
    docload      strict YAML/JSON loading
    jobfile      job files: read (key-path errors) and write (round trip)
    runs         sessions, task sessions, log entries
    replicas     replicas, restore points, per-disk change IDs, states
"""
