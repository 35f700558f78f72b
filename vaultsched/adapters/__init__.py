"""Adapters: every module that touches the outside world (the vault's files, `.vaultsched/`,
git, processes, the watcher, the clock, notifications). Nothing else does I/O of its own."""
