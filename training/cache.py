"""A cache of the frozen encoder prefix, keyed by slice and view ``(case_id, z, view)``.

On a CPU the image encoder dominates a step, yet with the encoder frozen up to the first adapted block its
output for a slice never changes, so the trainer computes it once per slice (prompts enter after the
cache). It is valid only while the encoder's input is a fixed function of the key: no image augmentation,
or flips only (the ``view``); otherwise the trainer turns it off and logs that it did. Modes: ``memory``
(up to ``max_bytes``; later slices are recomputed rather than evicted, since an epoch's random order would
make an LRU thrash), ``disk`` (fp16 files kept across resumes; every lookup returns float32 from fp16, so
results do not depend on what was cached) and ``off``. Written here rather than with a library: it is a
dictionary plus ``torch.save`` files, and what matters (the key, the validity rule, the dtype rule) is
specific to this trainer.
"""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from samdata.errors import ConfigError
from samdata.files import atomic_write, write_json
from training.augment import pixel_frames
from training.models import SamModel

Key = tuple  # (case_id, z, view): a slice as the encoder saw it (view: flips applied, see Augment.apply)


class PrefixCache:
    """Frozen encoder prefix outputs per slice; call with a batch of images and their slice keys."""

    def __init__(
        self,
        model: SamModel,
        upto_block: int,
        mode: str,
        max_bytes: int,
        folder: Path | None,
        tag: dict[str, object],
        *,
        trainable: bool = False,
    ) -> None:
        if mode not in ("off", "memory", "disk"):
            raise ConfigError(f"prefix cache mode {mode!r}; expected off, memory or disk")
        if trainable and mode != "off":
            raise ConfigError("a trainable encoder prefix (full fine-tuning) cannot be cached; use mode 'off'")
        self.trainable = trainable
        if mode == "disk" and folder is None:
            raise ConfigError("prefix cache mode 'disk' needs a folder")
        self.model, self.upto_block, self.mode, self.max_bytes = model, upto_block, mode, max_bytes
        self.folder = folder
        self.hits = self.misses = self.nbytes = 0
        self.compute_seconds = 0.0
        self._memory: dict[Key, torch.Tensor] = {}
        if mode == "disk":
            assert folder is not None
            self._prepare_folder(folder, tag)

    def _prepare_folder(self, folder: Path, tag: dict[str, object]) -> None:
        """Create the cache folder; empty it if it was written for another model, block or data."""
        folder.mkdir(parents=True, exist_ok=True)
        meta = folder / "cache.json"
        want = {**tag, "upto_block": self.upto_block}
        if meta.is_file() and json.loads(meta.read_text(encoding="utf-8")) != json.loads(json.dumps(want, default=str)):
            for old in folder.glob("*.pt"):
                old.unlink(missing_ok=True)  # another rank may have removed it
        write_json(meta, want)

    def compute(self, images: torch.Tensor) -> torch.Tensor:
        """The prefix output of (B, 3, S, S) images (uint8, or float in [0, 1]): without gradients, unless the prefix
        trains (``trainable``: then the caller's grad mode applies)."""
        start = time.perf_counter()
        # on a CPU, frozen slices go one at a time: as fast per slice as a batch there, and the encoder's
        # activations of one slice instead of the batch's stay resident (BENCHMARKS.md, memory)
        step = 1 if images.device.type == "cpu" and not self.trainable else max(len(images), 1)
        with nullcontext() if self.trainable else torch.no_grad():
            out = torch.cat(
                [
                    self.model.encode_prefix(self.model.preprocess(pixel_frames(images[i : i + step])), self.upto_block)
                    for i in range(0, len(images), step)
                ]
            )
        self.compute_seconds += time.perf_counter() - start
        return out

    def _file(self, key: Key) -> Path:
        assert self.folder is not None
        digest = hashlib.sha1("\0".join(map(str, key)).encode()).hexdigest()[:24]
        return self.folder / f"{digest}.pt"

    def _lookup(self, key: Key, device: torch.device) -> torch.Tensor | None:
        found = self._memory.get(key)
        if found is None and self.mode == "disk" and self._file(key).is_file():
            found = torch.load(self._file(key), map_location=device, weights_only=True)
            self._remember(key, found)
        return found

    def _remember(self, key: Key, value: torch.Tensor) -> None:
        if key not in self._memory and self.nbytes + value.nbytes <= self.max_bytes:  # a stack may repeat a slice
            self._memory[key] = value
            self.nbytes += value.nbytes

    def __call__(self, images: torch.Tensor, keys: list[Key | None]) -> torch.Tensor:
        """Prefix outputs (B, ...) of (B, 3, S, S) images (uint8, or float in [0, 1]) whose slices are ``keys``
        (None: an image that is not cached, e.g. one drawn by a random affine augmentation)."""
        if self.mode == "off":
            self.misses += len(keys)
            return self.compute(images)
        found = [None if key is None else self._lookup(key, images.device) for key in keys]
        missing = [i for i, value in enumerate(found) if value is None]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            computed = self.compute(images[missing])
            for i, value in zip(missing, computed, strict=True):
                if keys[i] is None:
                    found[i] = value.to(torch.float16) if self.mode == "disk" else value
                    continue
                value = value.clone() if self.mode == "memory" else value.to(torch.float16)
                if self.mode == "disk":
                    file, cpu = self._file(keys[i]), value.cpu()
                    atomic_write(file, lambda tmp, cpu=cpu: torch.save(cpu, tmp))
                self._remember(keys[i], value)
                found[i] = value
        out = torch.stack(found)  # type: ignore[arg-type]
        return out.float() if self.mode == "disk" else out

    def __len__(self) -> int:
        """Number of slices held in memory."""
        return len(self._memory)

    def describe(self) -> str:
        """One line for logs: mode, hits, misses, size and time spent computing."""
        total = self.hits + self.misses
        rate = 100.0 * self.hits / total if total else 0.0
        return (
            f"prefix cache {self.mode} (up to block {self.upto_block}): {self.hits} hits / {total} "
            f"({rate:.0f}%), {len(self._memory)} slices, {self.nbytes / 2**20:.1f} MiB in memory, "
            f"{self.compute_seconds:.1f} s computing"
        )
