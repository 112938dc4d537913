import os
import sys

from pipeline import quiet

# Before anything imports TensorFlow or MLflow: their start-up chatter is noise for a CLI.
if sys.argv[1:2] == ["--verbose"]:
    os.environ[quiet.VERBOSE_ENV] = "1"
if not quiet.verbose():
    quiet.quiet_env()
    if sys.argv[1:2] and sys.argv[1] in quiet.NATIVE_FILTERED:
        quiet.filter_native_stderr()

from pipeline.cli import cli

if __name__ == "__main__":
    cli()
