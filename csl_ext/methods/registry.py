"""The METHODS registry: name -> method class (solo-learn style)."""
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


def build_method(name: str, **kwargs):
    """Instantiates METHODS[name](**kwargs).

    Raises:
        ValueError: unknown method name (the message lists the known ones).
    """
    import csl_ext.methods  # noqa: F401  (registers the built-in methods)

    if name not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {name!r}")
    return METHODS[name](**kwargs)
