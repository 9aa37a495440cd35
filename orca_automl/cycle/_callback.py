"""How a running cycle reports progress, and how a caller (the search) can stop it."""

from __future__ import annotations


class CycleCallback:
    """No-op base: subclass and override what you need.

    `on_align_end` returning False stops the run before refine (the search prunes there,
    on the alignment signal); `on_eval` returning False stops refine early.
    """

    def on_align_step(self, step: int, loss: float) -> None:
        """After each alignment step (step 0 is the loss before any update)."""

    def on_align_end(self, curve: list[float]) -> bool:
        return True

    def on_eval(self, step: int, val_score: float, val_loss: float) -> bool:
        return True
