"""The New Replication Job wizard (and Edit job): `JobWizard` and its steps."""
