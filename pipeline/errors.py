"""The one exception type the CLI turns into a clean error message and exit code 1."""


class PipelineError(Exception):
    """A problem with the user's data, params or environment, stated in words they can act on."""
