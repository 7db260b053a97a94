"""Attribute editing in an autoencoder's latent space, fitted in closed form from labelled codes.

``method="msp"`` — Matrix Subspace Projection (Li et al., 2020) used as a plug-in on a trained
autoencoder: a ridge regression ``ŷ(z) = (z − μ) Mᵀ + ȳ`` reads the attribute (one-hot, k levels)
from the code; an edit gives the read-out the value ``r_v`` that training codes of value v read on
average, with the smallest change of z: ``z' = z + strength · M⁺ (r_v − ŷ(z))`` (M⁺ the
pseudo-inverse). The component of z orthogonal to the attribute subspace (the row space of M:
everything else the code carries) is left exactly as it was. (Targeting the one-hot ``e_v`` itself,
as a model trained with the MSP loss would, overshoots on a plain autoencoder whose read-out never
reaches it: every edit then lands on the same prototype.) The attribute subspace has rank up to k − 1, so the code needs more units
than that for anything else to survive (``fit`` warns otherwise). (The paper also trains the autoencoder with an MSP loss; here the
autoencoder is left as trained.)

``method="affine"`` — closed-form affine steering ("Representation Surgery", Singh et al., 2024):
the least-squares-optimal affine map that moves the codes of source level s onto target level v.
``match="mean"``: ``z' = z + strength · (μ_v − μ_s)``; ``match="covariance"`` (default): the map
that also matches the covariances, ``z' = μ_v + T (z − μ_s)`` with
``T = Σ_s^{-½} (Σ_s^{½} Σ_v Σ_s^{½})^{½} Σ_s^{-½}`` (the optimal transport map between the two
Gaussians; Ledoit–Wolf covariance estimates), blended as ``z + strength · (z' − z)``. Each row's
source level is its label when given to ``edit``, else predicted from its code by a logistic
regression fitted with the editor.

Edited codes are decoded by the model, so ``edit`` returns data (images or a table).
:func:`evaluate_edit` measures how often an independent classifier (trained on data, not codes)
then recognises the requested value.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.linalg

from ..errors import InputError, unknown_name_error
from ..estimator import require_fitted
from ._common import check_fitted, embed_features, features

EDIT_METHODS = ("msp", "affine")
MATCHES = ("mean", "covariance")


def _sqrtm_psd(S: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh((S + S.T) / 2)
    return (V * np.sqrt(np.clip(w, 0, None))) @ V.T


def _flat(output: Any) -> Any:
    """Decoded output as classifier input: images flattened per row, tables unchanged."""
    return output if hasattr(output, "columns") else np.asarray(output).reshape(len(output), -1)


class Editor:
    """Edit labelled attributes of data through a fitted autoencoder's codes (see module docstring).

    ``Editor(method="msp" | "affine", strength=1.0, ridge=1e-2, match="covariance")``, then
    ``fit(model, X, attributes)`` and ``edit(X, attribute=..., value=...)``. ``ridge`` is the MSP
    read-out's penalty per row (``ridge · n · ‖M‖²_F``); ``match`` applies to ``"affine"``.
    """

    def __init__(self, method: str = "msp", strength: float = 1.0, ridge: float = 1e-2, match: str = "covariance"):
        if method not in EDIT_METHODS:
            raise unknown_name_error("editing method", method, EDIT_METHODS)
        if match not in MATCHES:
            raise unknown_name_error("affine match", match, MATCHES)
        for name, value in (("strength", strength), ("ridge", ridge)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise InputError(f"{name} must be a non-negative number, got {value!r}.")
        self.method, self.strength, self.ridge, self.match = method, float(strength), float(ridge), match

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, model: Any, X: Any, attributes: Mapping[str, Sequence[Any]] | Sequence[Any]) -> "Editor":
        """Fit on a fitted estimator's codes of X; ``attributes``: ``{name: labels}`` (one label per
        row of X, e.g. ``{"scale": ds.factors[:, 1]}``) or one label array (named ``"label"``)."""
        from sklearn.covariance import ledoit_wolf
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model_ = check_fitted(model)
        Z = embed_features(model, features(model, X))
        if not isinstance(attributes, Mapping):
            attributes = {"label": attributes}
        if not attributes:
            raise InputError("attributes is empty: give at least one {name: labels}.")
        self.attributes_: dict[str, dict[str, Any]] = {}
        mu = Z.mean(0)
        for name, values in attributes.items():
            y = np.asarray(values)
            if y.ndim != 1 or len(y) != len(Z):
                raise InputError(f"attribute {name!r} must give one label per row of X ({len(Z)}), got shape {y.shape}.")
            levels, index = np.unique(y, return_inverse=True)
            if len(levels) < 2:
                raise InputError(f"attribute {name!r} has a single value, so there is nothing to edit.")
            counts = np.bincount(index)
            if counts.min() < 2:
                raise InputError(f"attribute {name!r} has a value with fewer than 2 rows ({levels[counts.argmin()]!r}).")
            onehot = np.eye(len(levels))[index]
            state: dict[str, Any] = {"levels": levels, "mean_z": mu, "mean_y": onehot.mean(0)}
            Zc, Yc = Z - mu, onehot - onehot.mean(0)
            M_t = scipy.linalg.solve(Zc.T @ Zc + self.ridge * len(Z) * np.eye(Z.shape[1]), Zc.T @ Yc, assume_a="pos")
            state["M"] = M_t.T                                       # (k, d): reads the attribute from z
            rank = int(np.linalg.matrix_rank(M_t))
            if self.method == "msp" and rank >= Z.shape[1]:
                warnings.warn(f"attribute {name!r} has {len(levels)} values and spans all {Z.shape[1]} code units, so "
                              f"an MSP edit keeps nothing else of the input; use a latent_dim above {rank}.",
                              stacklevel=2)
            state["M_pinv"] = np.linalg.pinv(M_t.T, rcond=1e-8)      # (d, k)
            # what codes of each value actually read: the edit's target (a one-hot read-out is
            # rarely reached by real codes, and forcing it overshoots into an average prototype)
            read = Zc @ M_t + state["mean_y"]
            state["class_read"] = np.stack([read[index == i].mean(0) for i in range(len(levels))])
            state["means"] = np.stack([Z[index == i].mean(0) for i in range(len(levels))])
            state["covs"] = np.stack([ledoit_wolf(Z[index == i])[0] for i in range(len(levels))])
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
            state["classifier"] = clf.fit(Z, index)
            self.attributes_[str(name)] = state
        return self

    # -- editing ------------------------------------------------------------------------------
    def _state(self, attribute: str) -> dict[str, Any]:
        require_fitted(self, "fit(model, X, attributes)")
        if attribute not in self.attributes_:
            raise unknown_name_error("attribute", attribute, self.attributes_)
        return self.attributes_[attribute]

    def _level(self, state: dict[str, Any], attribute: str, value: Any) -> int:
        hits = np.flatnonzero(state["levels"] == value)
        if len(hits) == 0:
            raise InputError(f"value {value!r} of attribute {attribute!r} was not seen at fit time; "
                             f"choose one of {', '.join(map(str, state['levels']))}.")
        return int(hits[0])

    def _ot_map(self, state: dict[str, Any], s: int, t: int) -> np.ndarray:
        cache = state.setdefault("maps", {})
        if (s, t) not in cache:
            root = _sqrtm_psd(state["covs"][s])
            inv_root = np.linalg.pinv(root)
            cache[(s, t)] = inv_root @ _sqrtm_psd(root @ state["covs"][t] @ root) @ inv_root
        return cache[(s, t)]

    def predict_codes(self, Z: np.ndarray, attribute: str) -> np.ndarray:
        """The attribute's value for each code, by the latent logistic regression fitted in ``fit``."""
        state = self._state(attribute)
        return state["levels"][state["classifier"].predict(np.asarray(Z, dtype=np.float64))]

    def edit_codes(self, Z: np.ndarray, attribute: str, value: Any, source: Sequence[Any] | None = None) -> np.ndarray:
        """Codes (n, d) with ``attribute`` set to ``value``; ``source``: the rows' current values
        (affine only; predicted from the codes when None)."""
        state = self._state(attribute)
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim != 2 or Z.shape[1] != len(state["mean_z"]):
            raise InputError(f"codes must be shaped (n, {len(state['mean_z'])}), got {Z.shape}.")
        t = self._level(state, attribute, value)
        if self.method == "msp":
            read = (Z - state["mean_z"]) @ state["M"].T + state["mean_y"]
            return Z + self.strength * (state["class_read"][t] - read) @ state["M_pinv"].T
        if source is None:
            src = state["classifier"].predict(Z)
        else:
            source = np.asarray(source)
            if len(source) != len(Z):
                raise InputError(f"source has {len(source)} labels but there are {len(Z)} rows.")
            src = np.array([self._level(state, attribute, v) for v in source])
        out = Z.copy()
        for s in np.unique(src):
            rows = src == s
            if s == t:
                continue
            if self.match == "mean":
                moved = Z[rows] + state["means"][t] - state["means"][s]
            else:
                moved = state["means"][t] + (Z[rows] - state["means"][s]) @ self._ot_map(state, int(s), t).T
            out[rows] = Z[rows] + self.strength * (moved - Z[rows])
        return out

    def edit(self, X: Any, attribute: str, value: Any, source: Sequence[Any] | None = None) -> Any:
        """X with ``attribute`` set to ``value``, decoded by the model (images in [0, 1] or a table,
        as ``Autoencoder.inverse_transform`` returns)."""
        model = self._model()
        Z = embed_features(model, features(model, X))
        return model.inverse_transform(self.edit_codes(Z, attribute, value, source))

    def _model(self) -> Any:
        require_fitted(self, "fit(model, X, attributes)")
        return self.model_


def evaluate_edit(
    editor: Editor, X: Any, attribute: str, labels: Sequence[Any], classifier: Any,
    values: Sequence[Any] | None = None, keep: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Success rate of edits judged by an independent ``classifier`` (anything with ``predict`` on
    flattened decoded images, or on decoded tables), trained on data rather than codes.

    For each target value v (default: every level seen at fit time), the rows of X whose label is
    not v are edited to v. ``success``: share of edited rows the classifier assigns to v;
    ``before``: share of the same rows it assigned to v before editing (the baseline an edit must
    beat); ``chance``: 1 / number of levels; ``per_value``: success by target. ``keep``:
    ``{name: classifier}`` for attributes that should not change — ``retention[name]`` is the
    share of edited rows whose prediction equals that of the row's own plain reconstruction.
    """
    model = editor._model()
    state = editor._state(attribute)
    labels = np.asarray(labels)
    flat = features(model, X)
    if len(labels) != len(flat):
        raise InputError(f"labels has {len(labels)} entries but X has {len(flat)} rows.")
    Z = embed_features(model, flat)
    original = _flat(model.inverse_transform(Z))     # plain reconstructions: the reference for "kept" attributes
    kept_before = {name: np.asarray(clf.predict(original)) for name, clf in (keep or {}).items()}
    before_pred = np.asarray(classifier.predict(_flat(model.preprocessor_.inverse_transform(flat.numpy()))))
    values = list(state["levels"] if values is None else values)
    hits = total = before = 0
    per_value: dict[Any, float] = {}
    kept = {name: 0 for name in kept_before}
    for v in values:
        rows = np.flatnonzero(labels != v)
        if len(rows) == 0:
            continue
        edited = _flat(model.inverse_transform(editor.edit_codes(Z[rows], attribute, v, source=labels[rows]
                                                                 if editor.method == "affine" else None)))
        pred = np.asarray(classifier.predict(edited))
        per_value[v.item() if hasattr(v, "item") else v] = float(np.mean(pred == v))
        hits += int((pred == v).sum())
        before += int((before_pred[rows] == v).sum())
        total += len(rows)
        for name, clf in (keep or {}).items():
            kept[name] += int((np.asarray(clf.predict(edited)) == kept_before[name][rows]).sum())
    if total == 0:
        raise InputError("no row of X has a label different from the requested values, so nothing was edited.")
    return {"success": hits / total, "before": before / total, "chance": 1 / len(state["levels"]),
            "per_value": per_value, "retention": {name: c / total for name, c in kept.items()}, "n_edits": total}
