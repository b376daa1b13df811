"""What a viewer without access to personal data sees of the emergency scenario's counts.

The people and households the emergency scenario counts rest on the households living in mapped
buildings (``buildings.households``, a personal field): a ring of 3 m around an apartment block is that
block's households, and two rings of one run, or the same ring in two runs, differenced, are the
households of the few buildings between them. For a viewer without the ``personal_data`` grant
(``Viewer.personal`` False: anonymous callers, external clients, commune officers, analysts and leaders
without it) every figure about people, households and buildings follows three rules:

1. **Cumulative rings only.** A ring shows the people and households within its outer distance of the
   incident (``people_within``, ``households_within``), never the band between two rings, and no raw
   count of mapped households or buildings (``people``, ``households``, ``mapped_households`` and
   ``buildings`` are withheld). The figure for a distance does not depend on the other rings asked for,
   so the rings [3, 500] and [500] give the same figure for 500 m: differencing them gives nothing.
2. **Small bases withheld.** A figure resting on fewer than the privacy threshold of mapped buildings
   (and at least one), or itself a count below the threshold, is withheld (``None``; the run counts
   them in ``suppressed``): a ring, a commune or a shelter that holds one building shows nothing of it.
3. **Rounded.** What is shown is rounded to the nearest :data:`ROUND_TO`, so that two runs whose outer
   distances differ by a small building give the same figure, not its households.

Shelter needs and flags rest on these figures: a withheld need raises no flag and shows no shortfall.
What remains: two runs whose zones differ by one large building (hundreds of households) differ by
about its households, rounded; closing that would need figures that do not follow the geometry asked
for. Emergency staff who need exact counts hold the ``personal_data`` grant and see every figure exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Counts shown to viewers without personal data are rounded to this.
ROUND_TO = 10


@dataclass
class Count:
    """A count of people or households and the number of mapped buildings it rests on (0: it rests on the
    commune's area, not on buildings)."""

    value: float
    buildings: int = 0


class Disclosure:
    """Turns counts into the figures a viewer sees: exact for viewers with personal data, else by the
    module's rules; counts what it withholds."""

    def __init__(self, personal: bool, threshold: int) -> None:
        self.personal = personal
        self.threshold = threshold
        self.withheld = 0

    def describe(self) -> str:
        if self.personal:
            return "exact counts (personal data)"
        return (
            f"cumulative per ring, rounded to {ROUND_TO}; figures resting on fewer than {self.threshold} "
            "buildings withheld"
        )

    def figure(self, count: Count) -> int | None:
        """The count as this viewer sees it."""
        exact = round(count.value)
        if self.personal:
            return exact
        if 0 < count.buildings < self.threshold or 0 < exact < self.threshold:
            self.withheld += 1
            return None
        return ROUND_TO * round(count.value / ROUND_TO)

    def band(self, count: Count) -> int | None:
        """A figure of the band between two rings: only for viewers with personal data."""
        return round(count.value) if self.personal else None

    def ring(self, ring: dict[str, Any], band: dict[str, Count], within: dict[str, Count]) -> dict[str, Any]:
        """A ring's figures: ``band`` (people, households, mapped households, buildings between this ring and
        the one inside it) and ``within`` (people, households within its outer distance)."""
        return {
            **ring,
            "people": self.band(band["people"]),
            "households": self.band(band["households"]),
            "buildings": self.band(band["buildings"]),
            "mapped_households": self.band(band["mapped_households"]),
            "people_within": self.figure(within["people"]),
            "households_within": self.figure(within["households"]),
        }
