"""The one exception type the CLI turns into a clean one-line error."""


class FlowscopeError(Exception):
    """A problem the user can fix (bad input, bad option, missing tool); shown without a traceback."""
