"""AMDIM's comparison notation for which feature maps are contrasted.

``(j:k)`` compares a vector of map j of one view with every location of map k
of the other view; j = -1 is the last (1x1) map, -2 the one before (5x5),
-3 the 7x7. Terms are joined by ``+``. ``U`` as k draws the target map
uniformly at random at every call ("last + random").

- [0]: Falcon & Cho 2020, §3.2 and Table 2 (the notation and these
  variants), https://arxiv.org/abs/2009.00104
- [1]: AMDIM, Bachman et al. 2019 (the 1-5, 1-7, 5-5 task),
  https://arxiv.org/abs/1906.00910
"""

import re
from dataclasses import dataclass

__all__ = ["COMPARISONS", "Comparison", "parse_comparisons"]

COMPARISONS = {
    "amdim": "(-1:-2)+(-1:-3)+(-2:-2)",  # 1x1 vs 5x5, 1x1 vs 7x7, 5x5 vs 5x5
    "last": "(-1:-1)",
    "last_random": "(-1:U)",
    "same_level": "(-1:-1)+(-2:-2)+(-3:-3)",
}

_TERM = re.compile(r"\((-?\d+):(-?\d+|U|k~U)\)")


@dataclass(frozen=True)
class Comparison:
    """source: negative index of the map that gives the anchor vector;
    target: negative index of the map of positives, None for random."""

    source: int
    target: int | None


def parse_comparisons(spec: str, num_maps: int) -> tuple[Comparison, ...]:
    """Parses a comparison spec (or a preset name of COMPARISONS) for an
    encoder that returns `num_maps` maps.

    Args:
        spec: e.g. "(-1:-2)+(-1:-3)+(-2:-2)" or "amdim"; spaces are ignored.
            Indices are negative (-1 the last map) or non-negative (0 the
            first), and are returned as negative indices.
        num_maps: how many maps the encoder returns, e.g. 3.

    Returns:
        The comparisons in the order written.

    Raises:
        ValueError: naming the term, for a malformed spec or an index that
            the encoder's maps do not have, e.g. "(-1:-4)" with 3 maps.

    Example:
        >>> parse_comparisons("amdim", 3)[0]
        Comparison(source=-1, target=-2)
    """
    if not isinstance(spec, str):
        raise ValueError(f"comparisons must be a string such as '(-1:-2)+(-1:-3)', got {spec!r}")
    if isinstance(num_maps, bool) or not isinstance(num_maps, int) or num_maps < 1:
        raise ValueError(f"num_maps must be an int >= 1, got {num_maps!r}")
    text = COMPARISONS.get(spec, spec).replace(" ", "")
    if not text:
        raise ValueError("comparisons must not be empty; e.g. '(-1:-1)' or one of " + ", ".join(COMPARISONS))
    parsed = []
    for term in text.split("+"):
        match = _TERM.fullmatch(term)
        if match is None:
            raise ValueError(
                f"comparisons: cannot parse {term!r} in {spec!r}; expected terms '(j:k)' joined by '+', "
                f"j and k map indices (-1 the last map) or k = 'U' for a random map, or a preset "
                f"({', '.join(COMPARISONS)})"
            )
        source = _map_index(int(match.group(1)), num_maps, term, spec)
        target = None if match.group(2) in ("U", "k~U") else _map_index(int(match.group(2)), num_maps, term, spec)
        parsed.append(Comparison(source, target))
    return tuple(parsed)


def _map_index(index: int, num_maps: int, term: str, spec: str) -> int:
    if not -num_maps <= index < num_maps:
        raise ValueError(
            f"comparisons: {term!r} in {spec!r} refers to map {index}, but the encoder returns "
            f"{num_maps} maps (valid indices: -{num_maps} .. -1 or 0 .. {num_maps - 1})"
        )
    return index - num_maps if index >= 0 else index
