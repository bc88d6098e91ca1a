"""One-line errors for the command-line tools (csl-train, csl-ablate,
python -m csl_ext.eval.evaluate_checkpoint).

A user's mistake (an unknown method, a misspelt keyword, a missing dataset, a
file that is not a checkpoint) reaches the command line as a ValueError,
FileNotFoundError or CheckpointError (a ValueError) with a message that names
the argument. `run_cli` prints it the way argparse prints its own errors,
``csl-train: error: ...``, and returns exit status 2, without a traceback.
Every other exception is a bug and keeps its traceback; so do user errors
when CSL_EXT_TRACEBACK=1 is set.

    def main(argv=None) -> int:
        return run_cli("csl-train", _main, argv)
"""

import difflib
import os
import sys
from collections.abc import Callable, Iterable

__all__ = ["USER_ERRORS", "USAGE_EXIT_STATUS", "run_cli", "closest"]

# the exceptions that mean "the command line or its files are wrong", caught explicitly
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError)
USAGE_EXIT_STATUS = 2  # argparse's status for usage errors


def run_cli(prog: str, fn: Callable, *args, **kwargs):
    """Calls ``fn(*args, **kwargs)``; a user error becomes one line on stderr
    and SystemExit(2).

    Args:
        prog: the command's name, e.g. "csl-train".
        fn: the command's body.

    Returns:
        What `fn` returns.

    Raises:
        SystemExit: status 2 after a user error (USER_ERRORS).
    """
    try:
        return fn(*args, **kwargs)
    except USER_ERRORS as error:
        if os.environ.get("CSL_EXT_TRACEBACK") == "1":
            raise
        message = str(error).strip() or type(error).__name__
        if isinstance(error, FileNotFoundError) and error.filename and error.filename not in message:
            message = f"{message}: {error.filename}"
        print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
        raise SystemExit(USAGE_EXIT_STATUS) from None


def closest(name: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for the choice nearest to `name`, or '' when none is close."""
    match = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
