"""The errors a user sees as one line naming the bad key or file (``rlvr.cli`` prints them, exit status 2)."""


class ConfigError(ValueError):
    """A params (or matrix) file that cannot be used; the message names the file and the bad key."""


class InputError(FileNotFoundError):
    """A missing or unreadable input file; the message names the file."""
