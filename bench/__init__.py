"""The benchmark scripts (``python bench/X.py``); what they share lives in :mod:`bench.common`.

Each script puts the repository root first on ``sys.path`` so that ``bench.common`` and this checkout's
packages import; no script imports another.
"""
