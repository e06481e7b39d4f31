"""When training stops, and which weights it keeps: train to convergence on the validation loss.

`train.early_stopping` stops a run when the validation loss has not improved by `min_delta` for `patience`
evaluations in a row, but never before `min_epochs` epochs; the adapter weights of the best evaluation are kept and
restored at the end. The record says why training stopped (`stop_reason`), at which step the kept weights were
best (`best_step`, `best_eval_loss`) and how many epochs and examples it saw.

Why not transformers' `EarlyStoppingCallback`: it needs `load_best_model_at_end`, i.e. a full checkpoint on disk
(adapter, optimizer and scheduler state) at every evaluation, and has no minimum number of epochs. The weights that
change in LoRA are a few MiB, so the best ones are copied in memory instead.
"""

from __future__ import annotations

from typing import Any


def make_callback(patience: int, min_delta: float, min_epochs: float) -> Any:
    """A `transformers.TrainerCallback` implementing the rule above (patience 0 = never stop early)."""
    from transformers import TrainerCallback

    class BestValidationCallback(TrainerCallback):
        def __init__(self) -> None:
            self.best_loss: float | None = None
            self.best_step: int | None = None
            self.best_state: dict[str, Any] | None = None
            self.bad_evals = 0
            self.stopped_early = False
            self.model: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
            self.model = model

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None,
                        model: Any = None, **kw: Any) -> None:
            loss = (metrics or {}).get("eval_loss")
            if loss is None:
                return
            model = model if model is not None else self.model
            if self.best_loss is None or loss < self.best_loss - min_delta:
                self.best_loss, self.best_step, self.bad_evals = float(loss), int(state.global_step), 0
                if model is not None:
                    self.best_state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
                return
            self.bad_evals += 1
            if patience and self.bad_evals >= patience and float(state.epoch or 0) >= min_epochs:
                self.stopped_early = True
                control.should_training_stop = True

        def restore_best(self, model: Any) -> bool:
            """Put the best evaluation's adapter weights back; False when the last weights were the best."""
            if self.best_state is None:
                return False
            import torch

            with torch.no_grad():
                for n, p in model.named_parameters():
                    if n in self.best_state:
                        p.copy_(self.best_state[n])
            return True

        def reason(self, state: Any, max_steps: int, epochs: float) -> str:
            if self.stopped_early:
                return (f"early stopping: eval_loss did not improve by {min_delta} for {patience} evaluations "
                        f"(best {self.best_loss:.4f} at step {self.best_step})")
            if max_steps > 0 and state.global_step >= max_steps:
                return f"train.max_steps={max_steps} reached"
            return f"train.num_train_epochs={epochs:g} completed"

    return BestValidationCallback()
