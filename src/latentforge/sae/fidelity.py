"""Downstream fidelity of a reconstruction of one module's activations: splice the reconstruction
back into the model and measure how much of the model's behaviour survives.

For each batch of texts the model runs three times: clean; *spliced*, the hooked module's output
replaced by ``reconstruct(output)`` at the tokens an SAE is trained on (not padding, and not the
special tokens unless ``keep_special``: the same selection as
:func:`~latentforge.sae.activations.extract_activations`); and *zero-ablated*, those positions set
to 0, the reference for "nothing recovered". A causal LM is scored by next-token cross-entropy
(``ce_loss_recovered``, as in Gao et al. 2024, "Scaling and evaluating sparse autoencoders") and the
KL divergence of its next-token distributions; an encoder by the cosine similarity of its
mean-pooled last hidden states (and the KL of its masked-LM distributions when it has that head).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..validation import positive_int
from .hf import (
    check_max_length,
    find_module,
    first_tensor,
    forward_options,
    iter_window_batches,
    load_model,
    pad_token_id,
    pad_windows,
    special_token_ids,
    token_rows,
)

__all__ = ["downstream_fidelity"]


def _replace_first(output: Any, value: Any) -> Any:
    """``output`` with its first tensor swapped for ``value`` (a tensor, or element 0 of a tuple/list)."""
    if isinstance(output, tuple):
        return (value, *output[1:])
    if isinstance(output, list):
        return [value, *output[1:]]
    if hasattr(output, "to_tuple"):  # a ModelOutput: set its first field
        key = next(iter(output.keys()))
        output[key] = value
        return output
    return value


def _mean_pool(hidden: Any, attention: Any) -> Any:
    """Mean of the hidden states over the real (non-padding) tokens of each window, in float64."""
    weights = attention.unsqueeze(-1).to(hidden.dtype)
    return ((hidden * weights).sum(1) / weights.sum(1).clamp_min(1)).double()


def _ratio(num: float, den: float) -> float:
    return num / den if abs(den) > 1e-12 else float("nan")


def downstream_fidelity(
    model_dir: str | Path,
    layer: str,
    texts: Iterable[str],
    reconstruct: Callable[[Any], Any],
    *,
    batch_size: int = 16,
    max_length: int = 128,
    keep_special: bool = False,
    device: str = "cpu",
) -> dict[str, float]:
    """How well a model still works when one module's output is replaced by its reconstruction.

    Parameters
    ----------
    model_dir : str or Path
        A local ``save_pretrained`` directory (model and tokenizer), loaded offline as by
        :func:`~latentforge.sae.hf.load_model`.
    layer : str
        The hooked module, named as for extraction (e.g. ``"encoder.layer.0"``, ``"h.0"``).
    texts : Iterable[str]
        Evaluation documents, tokenized and cut into windows of ``max_length`` tokens as for extraction.
    reconstruct : Callable[[torch.Tensor], torch.Tensor]
        Maps the selected activation rows, a ``(n, d)`` tensor of the module's output (trailing dims
        flattened), to their reconstruction of the same shape (e.g. ``SparseAutoencoder.reconstruct_torch``).
        Called with no gradient.
    batch_size : int
        Windows per forward pass.
    max_length : int
        Tokens per window, special tokens included.
    keep_special : bool
        Also replace the special tokens' activations (use the value the SAE's activations were
        extracted with).
    device : str
        Torch device for the model.

    Returns
    -------
    dict[str, float]
        Always ``n_texts``, ``n_tokens`` (positions replaced) and ``kind`` (``"causal_lm"`` or
        ``"encoder"``, a string). A causal LM adds ``ce_clean``, ``ce_spliced``, ``ce_zero`` (mean
        next-token cross-entropy in nats over every pair of consecutive real tokens),
        ``ce_loss_recovered`` ``= (ce_zero - ce_spliced) / (ce_zero - ce_clean)`` (1: as good as the
        model, 0: as bad as zero ablation; NaN when ablation changes nothing), ``ce_loss_delta``
        ``= ce_spliced - ce_clean``, ``kl_spliced`` and ``kl_zero`` (mean KL(clean ‖ other) of the
        next-token distributions over the same positions) and ``n_predictions``. An encoder adds
        ``cosine_pooled`` and ``cosine_pooled_zero`` (mean over windows of the cosine similarity of
        clean and spliced/ablated last hidden states, mean-pooled over real tokens), and with a
        masked-LM head ``kl_spliced`` and ``kl_zero`` over every real token.

    Raises
    ------
    InputError
        For an unusable model directory or layer, texts that give no tokens to replace (or, for a
        causal LM, no next-token pair), or a ``reconstruct`` that returns the wrong shape.
    """
    batch_size = positive_int(batch_size, "batch_size")
    if not callable(reconstruct):
        raise InputError(f"reconstruct must be a callable (activations -> reconstruction), got {type(reconstruct).__name__}.")
    loaded = load_model(model_dir, device=device)
    max_length = check_max_length(loaded, max_length)
    name, module = find_module(loaded.model, layer)

    import torch
    import torch.nn.functional as F

    model, tokenizer = loaded.model, loaded.tokenizer
    causal = loaded.kind == "causal_lm"
    excluded = [] if keep_special else special_token_ids(tokenizer)
    excluded_t = torch.tensor(excluded, dtype=torch.long, device=model.device)
    state: dict[str, Any] = {"mode": "clean", "select": None, "called": False}

    def hook(_module: Any, _args: Any, output: Any) -> Any:
        state["called"] = True
        if state["mode"] == "clean":
            return None
        x = first_tensor(output)
        flat = token_rows(x, state["select"], name)
        select = state["select"]
        new = flat.clone()
        if state["mode"] == "zero":
            new[select] = 0
        else:
            rows = flat[select]
            recon = reconstruct(rows)
            if not isinstance(recon, torch.Tensor):
                recon = torch.as_tensor(recon)
            if tuple(recon.shape) != tuple(rows.shape):
                raise InputError(f"reconstruct returned shape {tuple(recon.shape)} for activations of shape "
                                 f"{tuple(rows.shape)}; it must return the same shape.")
            new[select] = recon.to(device=new.device, dtype=new.dtype)
        return _replace_first(output, new.reshape(x.shape))

    def forward(mode: str, input_ids: Any, attention: Any) -> tuple[Any, Any]:
        """(logits or None, last hidden state or None) of one run in ``mode``."""
        state["mode"], state["called"] = mode, False
        out = model(input_ids=input_ids, attention_mask=attention, output_hidden_states=not causal,
                    **forward_options(loaded))
        if not state["called"]:
            raise InputError(f"module {name!r} was not called in the forward pass of {loaded.model_class}; "
                             "hook a module on the path from the input to the output.")
        logits = getattr(out, "logits", None)
        hidden = None
        if not causal:
            states = getattr(out, "hidden_states", None)
            hidden = states[-1] if states else getattr(out, "last_hidden_state", None)
            if hidden is None:
                hidden = first_tensor(out)
        return logits, hidden

    counter = [0]
    n_tokens = n_pred = n_windows = 0
    sums = {k: 0.0 for k in ("ce_clean", "ce_spliced", "ce_zero", "kl_spliced", "kl_zero",
                             "cosine_pooled", "cosine_pooled_zero")}
    handle = module.register_forward_hook(hook)
    try:
        batches = iter_window_batches(tokenizer, texts, max_length, batch_size, drop_ids=excluded, counter=counter)
        with torch.inference_mode():
            for batch in batches:
                input_ids, attention = pad_windows(batch, pad_token_id(tokenizer), model.device)
                select = attention.bool()
                if len(excluded_t):
                    select &= ~torch.isin(input_ids, excluded_t)
                state["select"] = select
                n_tokens += int(select.sum())
                # one run at a time beside the clean one: a real vocabulary makes logits large
                clean_logits, clean_hidden = forward("clean", input_ids, attention)
                if causal:  # predict token t+1 at position t wherever both are real tokens
                    where = attention[:, 1:].bool() & attention[:, :-1].bool()
                    target = input_ids[:, 1:][where]
                    n_pred += int(where.sum())
                elif clean_logits is not None:  # a masked-LM head: its distributions at every real token
                    where = attention.bool()
                    n_pred += int(where.sum())
                if clean_logits is not None:
                    clean_logits = clean_logits[:, :-1] if causal else clean_logits
                    logp_clean = F.log_softmax(clean_logits[where].float(), dim=-1)
                    p_clean = logp_clean.exp()
                    if causal:
                        sums["ce_clean"] += float(F.nll_loss(logp_clean, target, reduction="sum"))
                if not causal:
                    pooled_clean = _mean_pool(clean_hidden, attention)
                    n_windows += len(batch)
                for mode in ("spliced", "zero"):
                    logits, hidden = forward(mode, input_ids, attention)
                    if logits is not None and clean_logits is not None:
                        logits = logits[:, :-1] if causal else logits
                        logp = F.log_softmax(logits[where].float(), dim=-1)
                        if causal:
                            sums[f"ce_{mode}"] += float(F.nll_loss(logp, target, reduction="sum"))
                        sums[f"kl_{mode}"] += float((p_clean * (logp_clean - logp)).sum(dtype=torch.float64))
                    if not causal:
                        cos = F.cosine_similarity(pooled_clean, _mean_pool(hidden, attention), dim=-1)
                        sums["cosine_pooled" if mode == "spliced" else "cosine_pooled_zero"] += float(cos.sum())
    finally:
        handle.remove()
    if n_tokens == 0:
        raise InputError(f"the texts gave no tokens to replace ({counter[0]} texts read).")
    result: dict[str, Any] = {"kind": "causal_lm" if causal else "encoder", "n_texts": counter[0], "n_tokens": n_tokens}
    if causal:
        if n_pred == 0:
            raise InputError("the texts are too short to score: no window has two real tokens to predict one from the other.")
        ce = {k: sums[k] / n_pred for k in ("ce_clean", "ce_spliced", "ce_zero")}
        result.update(ce)
        result["ce_loss_recovered"] = _ratio(ce["ce_zero"] - ce["ce_spliced"], ce["ce_zero"] - ce["ce_clean"])
        result["ce_loss_delta"] = ce["ce_spliced"] - ce["ce_clean"]
        result["n_predictions"] = n_pred
    else:
        result["cosine_pooled"] = sums["cosine_pooled"] / n_windows
        result["cosine_pooled_zero"] = sums["cosine_pooled_zero"] / n_windows
    if n_pred and (causal or loaded.kind == "masked_lm"):
        result["kl_spliced"] = max(sums["kl_spliced"] / n_pred, 0.0)  # rounding can dip below 0
        result["kl_zero"] = max(sums["kl_zero"] / n_pred, 0.0)
    return result
