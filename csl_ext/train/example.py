"""What the examples/train_<method>.py scripts share: parse the csl-train
arguments with the example's defaults, pretrain, then evaluate the frozen
encoder (MLP with 1024 hidden units, as in Falcon & Cho 2020) beside a
random-init encoder and print both accuracies."""

from csl_ext.cli import main

__all__ = ["run_example"]


def run_example(method: str, method_kwargs: dict, argv=None, **defaults) -> int:
    """Runs the csl-train CLI with example defaults.

    Args:
        method: registry name, e.g. "simclr".
        method_kwargs: the example's method kwargs (small widths that train on
            2 CPU cores in minutes); ``--method-kwargs`` JSON on the command
            line is merged over them after parsing.
        argv: command-line arguments (None: sys.argv[1:]).
        **defaults: other csl-train defaults, e.g. epochs=5, batch_size=128.

    Returns:
        The exit status.
    """
    defaults.setdefault("output_dir", f"runs/{method}")
    return main(argv, method=method, method_kwargs=dict(method_kwargs), **defaults)
