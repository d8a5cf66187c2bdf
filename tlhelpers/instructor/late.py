"""The course's late-submission policy: a share of the score off for every started day late."""
from __future__ import annotations

import math

from nbgrader.plugins import LateSubmissionPlugin
from traitlets import Float


class PenaltyPerDayLate(LateSubmissionPlugin):
    """Take ``percent_per_day`` % of a late notebook's score for every started day, down to zero.

    nbgrader's own choices are no penalty or a zero; a deduction that grows with the delay is
    the usual course policy. Set it in nbgrader_config.py::

        c.AssignLatePenalties.plugin_class = PenaltyPerDayLate
        c.PenaltyPerDayLate.percent_per_day = 10
    """

    percent_per_day = Float(10.0, help="Percent of the score taken off per started day late").tag(config=True)

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float) -> float | None:
        if total_seconds_late <= 0:
            return None
        days = math.ceil(total_seconds_late / 86400)
        return min(score, score * self.percent_per_day * days / 100)
