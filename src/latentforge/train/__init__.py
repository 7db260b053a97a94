"""Training: :func:`fit_model` fits any model the way its class declares; :func:`train_model` is
the gradient loop, :mod:`.posterior` the prior selection and SGHMC sampling of Bayesian models,
:mod:`.sghmc` the sampler, :mod:`.progress` the one progress display."""

from .batches import Batches, StreamBatches, TensorBatches
from .checkpoint import RunState, load_checkpoint, save_checkpoint
from .loop import clip_grad_norm, evaluate_loss, fit_model, train_model
from .posterior import fit_posterior, select_prior
from .progress import ProgressDisplay
from .sghmc import SGHMC, collection_steps, sample_sghmc

__all__ = ["Batches", "ProgressDisplay", "RunState", "StreamBatches", "TensorBatches", "load_checkpoint", "save_checkpoint", "SGHMC", "clip_grad_norm", "collection_steps", "evaluate_loss", "fit_model",
           "fit_posterior", "sample_sghmc", "select_prior", "train_model"]
