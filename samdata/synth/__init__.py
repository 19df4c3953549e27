"""Synthetic image/mask pairs driven by label maps, their quality gate and medigan packages.

:mod:`~samdata.synth.kinds` registers the generator kinds (``deform``, ``labels2image``, ``cgan`` and the
baseline ``fastgan``), each a :class:`~samdata.synth.source.PairSource`; :mod:`~samdata.synth.gate` checks
pairs before they are stored; the ``medigan_*`` modules export and load medigan packages (the only file I/O
here). Composition with the store is in ``pipelines.synthesize``; nothing here imports storage, pipelines
or training.
"""
