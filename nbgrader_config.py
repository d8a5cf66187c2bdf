"""nbgrader settings for this repository's layout (instructors run nbgrader from here).

solutions/ is nbgrader's source folder (answers and hidden tests), course/ its release
folder (what students get, generated, committed). Grading state (submitted/, autograded/,
feedback/, gradebook.db, nbgrader.log, grades.csv) lives next to this file and is never
committed. docs/instructors.md walks through the whole loop.

Besides the layout, this file sets a grading policy on top of nbgrader 0.9.6's defaults:
the extra steps (a deleted graded cell is put back where it was, stderr does not zero a
test, a dead kernel fails only what is left, huge outputs are cut, code that touches the
grader is flagged) are in tlhelpers/instructor/grading.py, and feedback that cannot carry
hidden tests out in tlhelpers/instructor/feedback.py; the settings below put deleted test cells back
(``OverwriteCells.add_missing_cells``), give every cell a time limit after which the
kernel is interrupted and grading goes on, and stop slow output from abandoning a
submission. tests/test_grading.py proves each rule on a simulated class.

Grading runs with ``NBGRADER_EXECUTION`` set (nbgrader sets it for autograde and
validate); tlhelpers then switches its feature cache off, so a submission cannot plant
cached results for the checks to read.
"""
import os

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearOutput, DeduplicateIds,
                                    GetGrades, IgnorePattern, OverwriteCells, OverwriteKernelspec,
                                    SaveAutoGrades)

from tlhelpers.instructor.feedback import HideHiddenTests
from tlhelpers.instructor.grading import (CourseExecute, DropEmptyNbgraderMetadata, FlagSuspiciousCode, GradeOnErrorsOnly,
                                          LimitOutputSize, RestoreMissingGradedCells, StripLockedCellTags)
from tlhelpers.instructor.late import PenaltyPerDayLate

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

HERE = os.path.dirname(os.path.abspath(__file__))

# --- layout ------------------------------------------------------------------------------
c.CourseDirectory.root = HERE
c.CourseDirectory.source_directory = "solutions"   # nbgrader source: solutions + hidden tests
c.CourseDirectory.release_directory = "course"     # what students get, generated, committed
c.CourseDirectory.course_id = "transfer-learning"
c.NbGrader.logfile = os.path.join(HERE, "nbgrader.log")  # a record of every grading run
c.NbGrader.log_format = "%(color)s[%(name)s | %(levelname)s | %(asctime)s]%(end_color)s %(message)s"

# --- grading policy (tlhelpers/instructor/grading.py): nbgrader's default steps with ours inserted ---
c.Autograde.sanitize_preprocessors = [
    ClearOutput, DeduplicateIds, DropEmptyNbgraderMetadata, OverwriteKernelspec, RestoreMissingGradedCells,
    OverwriteCells,
    StripLockedCellTags, CheckCellMetadata,
]
c.Autograde.autograde_preprocessors = [
    CourseExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutputSize, GradeOnErrorsOnly,
    SaveAutoGrades, FlagSuspiciousCode, AssignLatePenalties, CheckCellMetadata,
]
c.GenerateFeedback.preprocessors = [GetGrades, HideHiddenTests, CSSHTMLHeaderPreprocessor]

c.OverwriteCells.add_missing_cells = True  # a deleted test cell is put back and run (RestoreMissingGradedCells
                                           # does it first, at the source position, written answers too)
c.Execute.timeout = 120                    # seconds per cell; then interrupt, fail the cell, go on
c.Execute.interrupt_on_timeout = True
c.Execute.iopub_timeout = 30               # wait this long for a cell's output to finish arriving...
c.Execute.raise_on_iopub_timeout = False   # ...then go on (nbgrader's default abandons the submission)
c.LimitOutput.max_lines = 1000
c.LimitOutput.max_traceback = 100

# --- late submissions (a due date set with `nbgrader db assignment add <id> --duedate=...`) ---
c.AssignLatePenalties.plugin_class = PenaltyPerDayLate   # 10 % of the score off per started day late
c.PenaltyPerDayLate.percent_per_day = 10
