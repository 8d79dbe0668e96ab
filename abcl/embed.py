"""t-SNE of the latent features, one embedding per model, and class-separability scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier

from abcl import ABCLError


def adversarial_set_titles(bim_linf_eps: float, fgsm_l2_eps: float) -> dict[str, str]:
    """The adversarial sets' names with their budgets, for Fig. 3's titles and claim 3's labels."""
    return {"bim_linf": f"BIM L∞ ε={bim_linf_eps:g} adversarial test",
            "fgsm_l2": f"FGSM L2 ε={fgsm_l2_eps:g} adversarial test"}


def load_features(path: str | Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as blob:
            arrays = {key: blob[key] for key in blob.files}
    except FileNotFoundError:
        raise ABCLError(f"{path}: file not found") from None
    except (OSError, ValueError) as err:
        raise ABCLError(f"{path}: not a features file (features.npz) ({type(err).__name__})") from None
    missing = [key for key in ("features", "labels", "set") if key not in arrays]
    if missing:
        raise ABCLError(f"{path}: not a features file (features.npz): no {', '.join(missing)}")
    return arrays


def tsne_embedding(features: np.ndarray, perplexity: float = 30.0, seed: int = 0, threads: int = 1) -> np.ndarray:
    """2-D t-SNE of all sets of one model at once, so its panels share one map."""
    perplexity = min(perplexity, (len(features) - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                n_jobs=threads).fit_transform(features.astype(np.float64))


def embed_features(arrays: dict[str, np.ndarray], perplexity: float = 30.0, seed: int = 0,
                   threads: int = 1) -> pd.DataFrame:
    xy = tsne_embedding(arrays["features"], perplexity, seed, threads)
    return pd.DataFrame({
        "set": arrays["set"], "label": arrays["labels"], "predicted": arrays["predicted"],
        "tsne_x": xy[:, 0], "tsne_y": xy[:, 1],
        "loss": str(arrays["loss"]), "config_hash": str(arrays["config_hash"]),
    })


def knn_correct(xy: np.ndarray, labels: np.ndarray, k: int = 5) -> np.ndarray:
    """Per point: does a k-NN classifier fitted on the other folds (stratified, unshuffled, so the
    same points fall in the same folds for every model) get its true class right? All False where
    a class has fewer than two points."""
    folds = min(5, int(np.bincount(labels).min()))
    if folds < 2:
        return np.zeros(len(labels), bool)
    return cross_val_predict(KNeighborsClassifier(k), xy, labels, cv=StratifiedKFold(folds)) == labels


def separability(arrays: dict[str, np.ndarray], embedding: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """Per set: silhouette of the 10-dim latent features by true class, and k-NN accuracy
    (5-fold cross-validated) of the true class from the 2-D t-SNE coordinates; ``embedding``
    gains the per-point k-NN result (``knn_correct``), on which claim 3 pairs two models."""
    rows = []
    embedding["knn_correct"] = False
    for name in dict.fromkeys(arrays["set"]):
        mask = arrays["set"] == name
        labels = arrays["labels"][mask]
        right = knn_correct(embedding.loc[mask, ["tsne_x", "tsne_y"]].to_numpy(), labels, k)
        embedding.loc[mask, "knn_correct"] = right
        measurable = np.bincount(labels).min() >= 2
        rows.append({"set": name, "n": int(mask.sum()),
                     "silhouette": float(silhouette_score(arrays["features"][mask], labels)),
                     "tsne_knn_accuracy": float(right.mean()) if measurable else float("nan")})
    seed = int(arrays["seed"]) if "seed" in arrays else None
    return pd.DataFrame(rows).assign(loss=str(arrays["loss"]), seed=seed, config_hash=str(arrays["config_hash"]))
