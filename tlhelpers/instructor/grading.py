"""nbgrader preprocessors for this course's grading policy (used by nbgrader_config.py).

Each rule closes a hole that tests/test_grading.py demonstrates with a simulated class;
nbgrader_config.py inserts these steps into nbgrader 0.9's default pipelines.

* A test cell is graded on errors only. nbgrader alone gives zero to any test cell that
  writes to stderr (a harmless torch UserWarning, a tqdm bar) and reads a number shown as
  the cell's value as partial credit; here stderr is kept but shown as ordinary output,
  and a displayed value is kept but never read as a score.
* Locked cells keep no tags: nbclient skips a cell tagged ``skip-execution``, so a
  student could tag a test cell and have it "pass" without running.
* A copied test cell no longer makes nbgrader crash on the whole submission.
* A deleted graded cell is put back at its place in the source, a written answer empty:
  nbgrader's own ``add_missing_cells`` finds a place only after a graded cell and fails
  the whole submission (KeyError) when the cell before it is a locked markdown cell.
* A kernel that dies (``os._exit``, a segfault, memory) fails the cell that killed it
  and every cell after it, but the notebook is still scored and gets feedback: tests
  that passed before the crash keep their points.
* Huge outputs are cut (lines and characters), so a notebook that prints 50 MB does not
  become a 50 MB feedback page.
* Student code that reaches for the grader's machinery (IPython input transformers,
  exception hooks, builtins, rebinding torch/numpy functions, the grading environment,
  ...) cannot always be beaten by a test cell running in the same process; such
  submissions are flagged in the log and their grades marked "needs manual grade".
* Feedback does not reveal hidden tests, however the submission tries: see
  tlhelpers/instructor/feedback.py.
"""
import re

from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.api import Gradebook
from nbgrader.preprocessors import Execute, LimitOutput, NbGraderPreprocessor
from traitlets import Dict, Integer, Unicode


def _error(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                        traceback=[f"\x1b[0;31m{ename}\x1b[0m: {evalue}"])


class DropEmptyNbgraderMetadata(NbGraderPreprocessor):
    """Remove the empty ``nbgrader`` metadata DeduplicateIds leaves on a duplicated cell.

    A student who copies a test cell (JupyterLab copies its metadata) gets two cells with
    one grade_id; DeduplicateIds keeps the last and empties the other's metadata, which
    then crashes ``OverwriteCells.add_missing_cells`` (KeyError 'grade_id') and the whole
    submission is lost. Without the empty dict the copy is an ordinary student cell.
    """

    def preprocess_cell(self, cell, resources, index):
        if "nbgrader" in cell.metadata and not cell.metadata.nbgrader:
            del cell.metadata["nbgrader"]
        return cell, resources


class RestoreMissingGradedCells(NbGraderPreprocessor):
    """Put back every graded cell the student deleted, where it is in the source notebook.

    Runs before OverwriteCells. The cell goes right after the nearest cell before it in the
    source that the submission still has (any cell nbgrader knows: locked markdown too),
    or first. A test cell comes back with its source (OverwriteCells then treats it as any
    other test cell: it runs and scores); a manually graded answer comes back empty, so it
    is graded like an unanswered question ("No response." in the Formgrader) instead of
    nbgrader failing the whole submission with ``KeyError`` (``OverwriteCells.
    add_missing_cells`` looks only for a graded or answer cell just before it).
    """

    notification = Unicode("This cell (id:{cell_id}) was missing from the submission and has been put back.\n",
                           help="prepended to a restored test cell, as a comment").tag(config=True)

    def preprocess(self, nb, resources):
        import nbformat

        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gb:
            source_nb = gb.find_notebook(info["notebook"], info["assignment"])
            order = [(c.name, c.cell_type, c.source, c.checksum, c.locked) for c in source_nb.source_cells]
            graded = {c.name: c.max_score for c in source_nb.grade_cells}
            answers = {c.name for c in source_nb.solution_cells}
        present = {cell.metadata.get("nbgrader", {}).get("grade_id") for cell in nb.cells}
        names = [name for name, *_ in order]
        for i, (name, cell_type, source, checksum, locked) in enumerate(order):
            if name not in graded or name in present:
                continue
            self.log.warning("Missing graded cell %s: putting it back at its place in the source%s", name,
                             " (empty: a written answer)" if name in answers else "")
            new = nbformat.v4.new_code_cell() if cell_type == "code" else nbformat.v4.new_markdown_cell()
            if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) < (4, 5):
                new.pop("id", None)
            new.metadata["nbgrader"] = {"grade": True, "grade_id": name, "locked": bool(locked),
                                        "points": graded[name], "solution": name in answers, "task": False,
                                        "schema_version": 3}
            if name in answers:
                new.source = ""
                new.metadata.nbgrader["checksum"] = utils.compute_checksum(new)
            else:
                note = self.notification.format(cell_id=name)
                new.source = ("# " + note if cell_type == "code" else note) + source
                new.metadata.nbgrader["checksum"] = checksum
                new.metadata["editable"] = False
                new.metadata["deletable"] = False
            at = 0
            for before in reversed(names[:i]):
                where = [k for k, cell in enumerate(nb.cells)
                         if cell.metadata.get("nbgrader", {}).get("grade_id") == before]
                if where:
                    at = where[-1] + 1
                    break
            nb.cells.insert(at, new)
            present.add(name)
        return nb, resources


class StripLockedCellTags(NbGraderPreprocessor):
    """Drop the tags of locked cells, so no tag (``skip-execution``) changes how they run."""

    def preprocess_cell(self, cell, resources, index):
        if utils.is_locked(cell) or utils.is_grade(cell):
            cell.metadata.pop("tags", None)
        return cell, resources


class CourseExecute(Execute):
    """nbgrader's Execute, but a dead kernel fails the remaining cells instead of the student.

    nbgrader would abandon the whole submission (no score, no feedback, "needs manual
    grade"). Here the cell that killed the kernel and every later code cell get an error
    output, so tests that passed before the crash keep their points.
    """

    def preprocess(self, nb, resources=None, km=None):
        self._dead_kernel = False
        return super().preprocess(nb, resources, km=km)

    def preprocess_cell(self, cell, resources, index):
        from nbclient.exceptions import CellTimeoutError, DeadKernelError

        if cell.cell_type != "code" or not cell.source.strip():
            return cell, resources
        if self._dead_kernel:
            cell.outputs = [_error("DeadKernelError", "not run: the kernel died in an earlier cell")]
            return cell, resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self._dead_kernel = True
            self.log.error("The kernel died while running cell %d; failing it and every later cell", index)
            cell.outputs.append(_error("DeadKernelError",
                                       "the kernel died while running this cell (os._exit, a crash, "
                                       "or out of memory)"))
            return cell, resources
        except CellTimeoutError as err:  # only if raise_on_iopub_timeout is switched back on
            self.log.error("Cell %d timed out (%s); failing it and going on", index, str(err).splitlines()[0])
            cell.outputs.append(_error("CellTimeoutError", str(err).splitlines()[0]))
            return cell, resources


class LimitOutputSize(LimitOutput):
    """nbgrader's LimitOutput (lines, traceback lines) plus a cap on the size of each output."""

    max_chars = Integer(20_000, help="maximum characters of text output per cell (-1: no limit)").tag(config=True)
    max_data_bytes = Integer(2_000_000, help="largest rich output (an image) kept (-1: no limit)").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        cell, resources = super().preprocess_cell(cell, resources, index)
        if cell.cell_type != "code":
            return cell, resources
        remaining = self.max_chars if self.max_chars >= 0 else float("inf")

        def cut(text):
            nonlocal remaining
            if len(text) <= remaining:
                remaining -= len(text)
                return text
            kept, remaining = text[:int(remaining)], 0
            return kept + f"\n... Output truncated ({len(text):,} characters) ..."

        for output in cell.outputs:
            if output.output_type == "stream":
                output.text = cut(output.text)
            elif output.output_type == "error":
                output.evalue = cut(output.evalue)
                output.traceback = [cut(line) for line in output.traceback]
            elif output.output_type in ("execute_result", "display_data"):
                for key, value in list(output.data.items()):
                    value = value if isinstance(value, str) else "".join(value)
                    if key.startswith("text/"):
                        output.data[key] = cut(value)
                    elif 0 <= self.max_data_bytes < len(value):
                        del output.data[key]
                        output.data.setdefault("text/plain", f"... {key} output removed ({len(value):,} bytes) ...")
        return cell, resources


class GradeOnErrorsOnly(NbGraderPreprocessor):
    """Make a test cell's score depend on errors alone (run before SaveAutoGrades).

    stderr becomes ordinary output (nbgrader would zero the cell), and a displayed value
    stays visible but is no longer read as partial credit.
    """

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell):
            for output in cell.outputs:
                if output.output_type == "stream" and output.name == "stderr":
                    output.name = "stdout"
                elif output.output_type == "execute_result":
                    output.output_type = "display_data"
                    output.pop("execution_count", None)
        return cell, resources


SUSPICIOUS = {
    "IPython input/AST transformers": r"input_transformers|ast_transformers|input_splitter|register_magic",
    "exception display hooks": r"set_custom_exc|showtraceback|excepthook|CustomTB",
    "the IPython shell or kernel": r"get_ipython\s*\(|\bdo_execute\b|\brun_cell\b|ipykernel",
    "tracing hooks": r"sys\s*\.\s*(settrace|setprofile)|\bgc\s*\.\s*get_referrers",
    "builtins": r"\bbuiltins\b|__builtins__",
    "rebinding a library function": (r"(?m)^[ \t]*(torch|np|numpy|math|tlh|tlhelpers|nn|F|sklearn)"
                                     r"(\s*\.\s*\w+)+\s*=(?!=)"
                                     r"|setattr\s*\(\s*(torch|np|numpy|math|tlh|tlhelpers|nn|F)\b"),
    "an object that compares equal to anything": r"def\s+__(eq|ne|lt|le|gt|ge|bool|float|int|index|abs)__",
    "the grading environment or the feature cache": (r"NBGRADER|TLH_NO_CACHE|TLH_CACHE_DIR|\bcache_dir\b|"
                                                     r"_content_key|\.cache[/\\'\"]"),
    "ending or signalling the process": r"os\s*\.\s*(_exit|kill|abort)\b|\bsignal\s*\.|sys\s*\.\s*exit\b",
    "the module table": r"sys\s*\.\s*modules|\bctypes\b|importlib",
}


class FlagSuspiciousCode(NbGraderPreprocessor):
    """Flag submissions whose own code touches the grader's machinery, for a human to review.

    A test cell cannot defend against code that rewrites later cells before they run or
    swallows their errors, and no honest answer in this course needs any of these. A
    flagged notebook keeps its automatic score, but its grades are marked "needs manual
    grade" (formgrader lists them) and the log names the student, the cell and the reason.
    """

    patterns = Dict(SUSPICIOUS, help="reason -> regular expression; a match in a student's code "
                                     "flags the notebook").tag(config=True)

    def preprocess(self, nb, resources):
        found = []
        for cell in nb.cells:
            if cell.cell_type != "code" or utils.is_locked(cell):
                continue  # locked cells were restored from solutions/: not the student's code
            where = cell.metadata.get("nbgrader", {}).get("grade_id", "a cell the student added")
            for reason, pattern in self.patterns.items():
                match = re.search(pattern, cell.source)
                if match:
                    found.append(f"{where}: {reason} ({match.group(0).strip()!r})")
        if found:
            info = resources["nbgrader"]
            self.log.warning("FLAGGED for manual review: student %s, %s/%s: %s", info["student"],
                             info["assignment"], info["notebook"], "; ".join(found))
            with Gradebook(info["db_url"]) as gb:
                submission = gb.find_submission_notebook(info["notebook"], info["assignment"], info["student"])
                for grade in submission.grades:
                    grade.needs_manual_grade = True
                gb.db.commit()
        return nb, resources

