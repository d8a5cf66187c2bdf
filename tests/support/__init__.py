"""What the tests share: paths, notebooks, course folders, submissions, probes, apt and the browser.

One package, imported as ``support.<module>`` (pytest puts tests/ on sys.path):

- ``paths``: the repository's folders (the one ``REPO``);
- ``notebooks``: reading notebooks and nbgrader cells, one assignment's source and release;
- ``course``: a temporary course folder, the nbgrader command line, grades from the gradebook;
- ``cheats``: honest and adversarial submissions (their code in tests/cheats/*.py);
- ``probes``: the tiny assignments the grading tests build for themselves;
- ``photos``: real sample photos as tensors;
- ``apt``: installing a Debian package the suite needs (bubblewrap, chromium) when root;
- ``browser``: JupyterLab and headless Chromium for the browser test;
- ``hub``: a class hub on this machine (its proxy, its users' Python, accounts, users' commands);
- ``docs``: the ``python -m tlhelpers...`` commands the documents show;
- ``calls``: counting the calls of a function (what a cache saves).
"""
