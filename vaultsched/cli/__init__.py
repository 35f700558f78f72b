"""The command line: `app` parses each command, calls one function and prints."""


def main() -> int:
    """The `vaultsched` program (imported late: `vaultsched.cli.doctor` and the others must not
    pull in the whole command line)."""
    from vaultsched.cli.app import main as run

    code = run()
    _before_exit()
    return code


def _before_exit() -> None:
    """The command is done and its output written: what is left is the interpreter's exit,
    which passes its garbage collector over every object left (the modules of the command line,
    what the command built) as it clears them. That took 13-17 ms after `--help` and 25-45 ms
    after a cold `list --json` of 100,000 notes, against 3-5 ms with the objects frozen out of
    its reach (`gc.freeze`). They are still cleared and freed with their modules; only objects
    kept alive by a reference cycle alone are left to the end of the process, which vaultsched
    never relies on (it closes its files and runs no finalizer: `atexit` hooks, which logging
    flushes its handlers with, run as before). Only here, at the end of the process's own
    program: never in a process that runs the command line in-process (the tests do)."""
    import gc

    gc.freeze()
