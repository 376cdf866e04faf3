"""Settings of the room core's property tests, and the cheaper profile ``make mutate`` runs them under.

``tests/mutation/mutate.py`` sets :data:`PROFILE_VARIABLE` to ``mutmut`` for its runs.  There a
failure is all that counts, and it runs once per mutant: a fixed, smaller set of examples (the same
for every mutant, so a verdict never depends on luck) and no shrinking (finding the smallest failure
cost far more than finding one).
"""

from __future__ import annotations

import os

from hypothesis import Phase, settings

__all__ = ["PROFILE_VARIABLE", "MUTMUT_PROFILE", "property_settings"]

PROFILE_VARIABLE = "SWITCHBOARD_HYPOTHESIS_PROFILE"
MUTMUT_PROFILE = "mutmut"

settings.register_profile(
    MUTMUT_PROFILE, max_examples=20, deadline=None, derandomize=True, database=None,
    phases=[Phase.explicit, Phase.generate],
)


def property_settings(max_examples: int) -> settings:
    """``max_examples`` examples without a deadline; under the mutmut profile, that profile instead."""
    if os.environ.get(PROFILE_VARIABLE) == MUTMUT_PROFILE:
        return settings.get_profile(MUTMUT_PROFILE)
    return settings(max_examples=max_examples, deadline=None)
