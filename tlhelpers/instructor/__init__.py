"""The instructor's side of the course: grading policy, class grading and benchmarks.

Students never import this subpackage: ``import tlhelpers`` does not load it, the lesson
helpers never depend on it, and what test cells call (``forbid``) is in ``tlhelpers.checks``.

One home per concern:

- ``grading``: nbgrader preprocessors, the grading policy (nbgrader_config.py uses them);
- ``feedback``: feedback that cannot carry hidden tests out;
- ``grade``: the command ``python -m tlhelpers.instructor.grade``: jobs, scheduling, retries;
- ``contract``: ``Job``, ``Limits``, ``Result`` and ``Kind``, what the command and workers exchange;
- ``course``: the course folder, its submissions and the rerun state file;
- ``writer``: the single writer of gradebook.db, autograded/ and nbgrader.log;
- ``worker``: ``grade_one``, one submission in a throwaway folder (a thread, or a Dask worker);
- ``bwrap``: the sandbox's command lines; ``watchdog``: its whole-submission limits;
- ``inside``: what runs inside the sandbox (nbgrader's generate and autograde);
- ``bench``: ``python -m tlhelpers.instructor.bench``, the measurements in docs/benchmarks.md.
"""
