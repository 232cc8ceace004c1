"""Backups, restores and monthly evidence packs (SPEC 2.4, 2.6).

`service.BackupService` is the entry point for Slack, the scheduler and the command line;
the modules beside it are its parts: `collect` reads a cluster, `bundle` lays out the files,
`targets`/`git`/`s3` store them, `catalog` remembers them (in the tables of `tables`),
`restore` plans and applies a bundle, `evidence` builds the monthly pack.
"""
