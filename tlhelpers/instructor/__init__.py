"""The instructor's side of the course: grading policy, class grading and benchmarks.

Students never import this subpackage: ``import tlhelpers`` does not load it, and the
lesson helpers never depend on it.
"""
