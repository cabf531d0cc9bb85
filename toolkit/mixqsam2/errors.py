"""The one exception type for input a user can fix (bad path, bad prompt, bad checkpoint).

Command-line entry points turn it into one line on stderr and exit code 2; library callers
can catch it like any ``ValueError``.
"""


class UserInputError(ValueError):
    """Input the user can correct; its message is shown as-is, on one line."""
