"""One colour (and marker and line style) per experimental condition, for every figure.

The evaluation's matplotlib figures and the report's SVG plots draw the same conditions
(top-k, random-k, bottom-k, all neurons, majority class); they take their colours from here
so a condition looks the same wherever it appears. Colours come from Paul Tol's colour-blind
safe "vibrant" scheme; red for top and blue for bottom match the activation heatmaps
(positive red, negative blue). Library code only: no plotting import.
"""

from __future__ import annotations

__all__ = ["CONDITION_COLORS", "CONDITION_DASHES", "CONDITION_MARKERS", "condition_of"]

#: Colour per condition. ``full`` is an alias of ``all`` (the probe on all neurons).
CONDITION_COLORS: dict[str, str] = {
    "top": "#cc3311",
    "random": "#777777",
    "bottom": "#0077bb",
    "all": "#009988",
    "full": "#009988",
    "majority": "#000000",
}
#: Marker per curve condition (matplotlib names; the SVG plots draw the same shapes).
CONDITION_MARKERS: dict[str, str] = {"top": "o", "random": "s", "bottom": "v"}
#: SVG dash pattern per reference level (``""``: solid).
CONDITION_DASHES: dict[str, str] = {"all": "2,3", "full": "2,3", "majority": "6,3"}


def condition_of(name: str) -> str | None:
    """The condition a series or reference line is about, from its name; None if unknown.

    ``"top"``, ``"top-k"``, ``"top neurons first"`` -> ``"top"``; ``"random order (mean)"``
    -> ``"random"``; ``"all 11904 neurons"``, ``"full"`` -> ``"all"``; ``"majority class"``
    -> ``"majority"``.
    """
    text = name.strip().lower()
    for key in ("top", "random", "bottom", "majority"):
        if text.startswith(key) or text.split(" ")[0].rstrip("-k") == key:
            return key
    if "random" in text:
        return "random"
    if "majority" in text:
        return "majority"
    if text.startswith(("all", "full")):
        return "all"
    return None
