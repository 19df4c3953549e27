"""Synthetic image/mask pairs: a few-shot paired GAN, its quality gate and medigan packages.

* :mod:`samdata.synth.networks` — paired generators (registry ``GENERATORS``: fastgan, dcgan) and the
  spectral-norm discriminator; :mod:`~samdata.synth.augment` — DiffAugment; :mod:`~samdata.synth.losses`
  — hinge loss; :mod:`~samdata.synth.train` — the seeded, resumable training loop (``train_gan``);
  :mod:`~samdata.synth.checkpoint` — the generator folder; :mod:`~samdata.synth.sample` — seeded draws
  on the store grid; :mod:`~samdata.synth.pairs` — conversions between store and model frames.
* :mod:`samdata.synth.gate` — degenerate masks, memorisation distance, segmenter consistency Dice,
  Fréchet distance of injected features.
* :mod:`samdata.synth.medigan_io` — export to / load from medigan packages (file I/O lives there).

Composition with the store is in ``pipelines.synthesize``; the LiteMedSAM gate models are built in
``samdata.cli.synth``. Nothing here imports storage, pipelines or training.
"""
