"""Synthetic image/mask pairs driven by label maps, their quality gate and medigan packages.

* :mod:`samdata.synth.kinds` — the registry of generator kinds: ``deform`` and ``labels2image`` (no
  training; :mod:`~samdata.synth.deform`, :mod:`~samdata.synth.render`, on :mod:`~samdata.synth.fields`
  and :mod:`~samdata.synth.morph`), ``cgan`` (:mod:`~samdata.synth.cgan`, a mask-conditioned GAN) and
  ``fastgan`` (:mod:`~samdata.synth.networks` / :mod:`~samdata.synth.train` / :mod:`~samdata.synth.sample`,
  the noise-to-pair GAN kept as a baseline). Every kind is a :class:`~samdata.synth.source.PairSource`.
* :mod:`samdata.synth.gate` — label areas and components in the real range, folding, tissue order,
  memorisation, and a batch Fréchet distance of full-resolution features (:mod:`~samdata.synth.quality`).
* :mod:`samdata.synth.medigan_export` / :mod:`~samdata.synth.medigan_io` /
  :mod:`~samdata.synth.medigan_source` — medigan packages out and in (file I/O lives there).

Composition with the store is in ``pipelines.synthesize``. Nothing here imports storage, pipelines or
training.
"""
