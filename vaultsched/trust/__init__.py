"""Trust: what a task (and the vault config) may run, decided by this user, never by the vault."""
