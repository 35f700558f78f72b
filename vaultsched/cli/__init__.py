"""The command line: `app` parses each command, calls one function and prints."""


def main() -> int:
    """The `vaultsched` program (imported late: `vaultsched.cli.doctor` and the others must not
    pull in the whole command line)."""
    from vaultsched.cli.app import main as run

    return run()
