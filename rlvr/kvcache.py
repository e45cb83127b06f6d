"""A key/value cache for the transformers backend's generation loop that grows in place.

transformers' ``DynamicCache`` concatenates every new token onto the whole cache, copying it at each step: at 128
sequences of 200 tokens that copy was a third of a decoding step on a CPU (SmolLM2-135M, float32). Here each
layer writes the new positions into buffers with room to spare and hands out views of their filled part; a full
buffer is copied once into one with ``GrowingLayer.ROOM`` more positions. The values are the same; only the copying
goes. (transformers' ``StaticCache`` also writes in place, but attends over its whole length at every step.)
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer


class GrowingLayer(DynamicLayer):
    """A ``DynamicLayer`` whose ``keys`` / ``values`` are views of the first ``length`` positions of larger
    buffers (batch, heads, positions, head dimension)."""

    ROOM = 128  # positions added when a buffer is full

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self.length, self.buffers = 0, None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        states = (key_states, value_states)
        end = self.length + key_states.shape[-2]
        if self.buffers is None or end > self.buffers[0].shape[-2]:
            olds = self.buffers or (None, None)
            self.buffers = [self._larger(old, state, end) for old, state in zip(olds, states, strict=True)]
        for buffer, state in zip(self.buffers, states, strict=True):
            buffer[:, :, self.length : end] = state
        self.length = end
        self._views()
        return self.keys, self.values

    def _larger(self, old: torch.Tensor | None, state: torch.Tensor, needed: int) -> torch.Tensor:
        """A buffer with room for ``needed + ROOM`` positions, holding ``old``'s filled ones."""
        batch, heads, _, dim = state.shape
        buffer = state.new_empty((batch, heads, needed + self.ROOM, dim))
        if old is not None:
            buffer[:, :, : self.length] = old[:, :, : self.length]
        return buffer

    def _views(self) -> None:
        self.keys, self.values = (buffer[:, :, : self.length] for buffer in self.buffers)

    def get_seq_length(self) -> int:
        return self.length if self.is_initialized else 0

    def crop(self, tokens_to_remove: int) -> None:
        """Forget the last ``-tokens_to_remove`` positions (a negative count, as ``DynamicLayer.crop`` takes)."""
        if tokens_to_remove > 0:
            raise ValueError(f"crop takes a negative count of positions to remove, not {tokens_to_remove}")
        if self.get_seq_length():
            self.length = max(0, self.length + tokens_to_remove)
            self._views()

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.get_seq_length():
            self.buffers = [buffer.repeat_interleave(repeats, dim=0) for buffer in self.buffers]
            self._views()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.get_seq_length():
            self.buffers = [buffer[indices] for buffer in self.buffers]
            self._views()


def growing_cache() -> Cache:
    """An empty cache of :class:`GrowingLayer` s, one per model layer (created as the model first writes)."""
    return Cache(layer_class_to_replicate=GrowingLayer)
