"""The one error a user sees: a line naming the problem and the fix, exit status 2."""


class UsageError(Exception):
    """Bad input or an unusable environment; the CLI prints the message alone and exits with status 2."""

    exit_status = 2
