"""Cluster failures by mode: k-means on TF-IDF (fixed random_state), k by silhouette."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ClusterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k_min: int = Field(default=2, ge=2)
    k_max: int = Field(default=8, ge=2)
    random_state: int = 0
    top_terms: int = Field(default=6, ge=1)


def failure_text(rec: dict[str, Any], reasons: list[str]) -> str:
    """What a failure is about: prompt, output and its failure reasons as tokens."""
    # Reason tags are repeated so the failure mode weighs as much as the topic words.
    tags = " ".join(r.replace(":", "_") for r in reasons)
    return f"{rec.get('prompt') or ''} {rec.get('output') or ''} {tags} {tags} {tags}"


def cluster(texts: list[str], s: ClusterSettings) -> tuple[list[int], list[list[str]], dict[str, Any]]:
    """Labels per text, top terms per cluster, and how k was chosen."""
    if len(texts) < 3:
        return [0] * len(texts), [[]], {"k": 1, "reason": "fewer than 3 failures"}
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import silhouette_score

    vec = TfidfVectorizer(
        stop_words="english", max_features=2000, token_pattern=r"(?u)\b[a-zA-Z_][a-zA-Z_]+\b"
    )
    x = vec.fit_transform(texts)
    terms = np.array(vec.get_feature_names_out())
    scores: dict[int, float] = {}
    models = {}
    for k in range(s.k_min, min(s.k_max, len(texts) - 1) + 1):
        km = KMeans(n_clusters=k, random_state=s.random_state, n_init=10).fit(x)
        if len(set(km.labels_)) < 2:
            continue
        scores[k] = float(silhouette_score(x, km.labels_, random_state=s.random_state))
        models[k] = km
    if not scores:
        return [0] * len(texts), [[]], {"k": 1, "reason": "all failures are alike"}
    best = max(scores, key=lambda k: (round(scores[k], 6), -k))
    km = models[best]
    # Relabel clusters by size (then first member) so output order is stable and meaningful.
    sizes = np.bincount(km.labels_, minlength=best)
    order = sorted(range(best), key=lambda c: (-sizes[c], int(np.argmax(km.labels_ == c))))
    remap = {old: new for new, old in enumerate(order)}
    top = [[str(t) for t in terms[np.argsort(-km.cluster_centers_[old])[: s.top_terms]]] for old in order]
    return (
        [remap[int(label)] for label in km.labels_],
        top,
        {"k": best, "silhouette": {str(k): round(v, 4) for k, v in scores.items()}},
    )
