"""The METHODS registry: name -> method class (solo-learn style)."""

import inspect

from csl_ext._cli_errors import closest

METHODS: dict = {}


def register(name: str):
    """Class decorator adding a Method subclass to METHODS under `name`."""

    def add(cls):
        if name in METHODS:
            raise ValueError(f"method {name!r} is already registered")
        cls.name = name
        METHODS[name] = cls
        return cls

    return add


def check_method_kwargs(name: str, kwargs: dict) -> None:
    """Checks that `name` is registered and that every key of `kwargs` is a
    keyword of its class's __init__, before anything is built.

    Raises:
        ValueError: unknown method or keyword; the message lists the valid ones
            and suggests the closest.
    """
    import csl_ext.methods  # noqa: F401  (registers the built-in methods)

    if name not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {name!r}{closest(name, METHODS)}")
    if not isinstance(kwargs, dict):
        raise ValueError(f"method_kwargs must be a dict (a JSON object), got {type(kwargs).__name__}")
    parameters = inspect.signature(METHODS[name].__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return  # takes **kwargs: the class checks them itself
    valid = [k for k, p in parameters.items() if k != "self" and p.kind is not inspect.Parameter.VAR_POSITIONAL]
    for key in kwargs:
        if key not in valid:
            raise ValueError(f"{name} has no keyword {key!r}{closest(key, valid)}; its keywords are {valid}")


def build_method(name: str, **kwargs):
    """Instantiates METHODS[name](**kwargs).

    Raises:
        ValueError: unknown method name or keyword (the message lists the known
            ones and suggests the closest).
    """
    check_method_kwargs(name, kwargs)
    return METHODS[name](**kwargs)
