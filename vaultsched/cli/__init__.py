"""The command line: `app` parses each command, calls one function and prints."""
