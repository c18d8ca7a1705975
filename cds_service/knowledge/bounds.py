"""How far a site policy may move each threshold: its bounds, the direction that is stricter, and its order.

Every tunable entry of ``thresholds.json`` declares ``stricter`` (``higher``: a larger value makes
the check fire more often, e.g. a longer MAOI washout; ``lower``: a smaller value does, e.g. a lower
dose ceiling; ``neither``), ``bounds`` ``{"min", "max", "source"}`` and optionally ``below`` or
``atMost`` (another threshold it must stay under, so that bands stay in order). Where the label
gives the number, the bound on the laxer side *is* the label value: a policy can only be stricter.
Entries of ``kind: constant`` have no bounds: they cannot be overridden at all.
"""

import dataclasses
import functools
import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

DIRECTIONS = ("higher", "lower", "neither")
_DEFAULT_FILE = Path(__file__).resolve().parent / "thresholds.json"


@dataclasses.dataclass(frozen=True)
class ThresholdBounds:
    name: str
    default: float
    stricter: str          # higher | lower | neither
    minimum: float
    maximum: float
    source: str            # where the bound comes from (a label section, or a site range by design)
    below: str | None = None    # must be < that threshold
    at_most: str | None = None  # must be <= that threshold

    @property
    def laxer_bound(self) -> tuple[str, float] | None:
        """("min" or "max", value) on the side a policy would weaken the check, if it has one."""
        return {"higher": ("min", self.minimum), "lower": ("max", self.maximum)}.get(self.stricter)


def _bounds(name: str, spec: Mapping) -> ThresholdBounds:
    bounds = spec.get("bounds")
    if spec.get("stricter") not in DIRECTIONS or not isinstance(bounds, Mapping):
        raise ValueError(f"thresholds.json: {name} needs 'stricter' ({', '.join(DIRECTIONS)}) and 'bounds'")
    result = ThresholdBounds(name=name, default=float(spec["value"]), stricter=spec["stricter"],
                             minimum=float(bounds["min"]), maximum=float(bounds["max"]), source=str(bounds["source"]),
                             below=spec.get("below"), at_most=spec.get("atMost"))
    if not result.minimum <= result.default <= result.maximum:
        raise ValueError(f"thresholds.json: {name} = {result.default:g} is outside its own bounds")
    return result


def load_threshold_bounds(path: str | Path | None = None) -> Mapping[str, ThresholdBounds]:
    """Bounds of every tunable threshold of ``thresholds.json`` (default: the packaged file)."""
    raw = json.loads(Path(path or _DEFAULT_FILE).read_text(encoding="utf-8"))
    bounds = {name: _bounds(name, spec) for name, spec in raw.items() if spec.get("kind") != "constant"}
    for item in bounds.values():
        for other in (item.below, item.at_most):
            if other is not None and other not in bounds:
                raise ValueError(f"thresholds.json: {item.name} refers to unknown threshold {other!r}")
    return MappingProxyType(bounds)


@functools.cache
def default_threshold_bounds() -> Mapping[str, ThresholdBounds]:
    return load_threshold_bounds()
