"""Bad input: the errors every command reports as one line naming the problem and the fix, exit code 2.

Raised anywhere below a command-line entry (train.py, sweep.py, saliency.py,
datasets.py, plots.py, diagnosis.py); `report` is how each entry prints one, and `ArgumentParser` makes
argparse's own refusals one line too.
Nothing is written to a results file before they are raised.
"""
import argparse
import sys

EXIT_BAD_INPUT = 2


class UsageError(ValueError):
    """A bad flag value or combination of flags."""


class DataError(UsageError):
    """Bad data or a bad data location (an image folder, a metadata file, a cache)."""


def report(error):
    """Print `error` as one line on stderr; returns the exit code for bad input."""
    print(f"error: {error}", file=sys.stderr)
    return EXIT_BAD_INPUT


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose own errors (an unknown flag, a value of the wrong type or outside its choices, a
    missing required flag) are one line too, naming where the flags are listed, exit 2; argparse's default
    prints the whole usage first."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"error: {message}; see {self.prog} --help\n")
