"""Automatic class grouping for per-layer gated networks (pure numpy; no torch).

A gated layer's specialized units are split into G groups; each group serves a set of classes
and the gate opens the groups of the classes it picks. The grouping is derived from one trained
dense model (see docs/specialization.md):

- ``confusion``: classes the dense model confuses with each other share a group, because they
  need the same discriminating units. Similarity = symmetric, row-normalised (soft) confusion.
- ``activity``: classes whose class-mean hidden spike-rate vectors are alike share a group.
  Similarity = cosine of the centred class-mean vectors.

Both feed the same size-capped average-linkage agglomerative clustering, then the reuse rule
(``groups_per_class`` r: each class also joins its r-1 most similar other groups).
"""
from __future__ import annotations

import math

import numpy as np


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (C, C): row = true class, column = predicted class."""
    conf = np.zeros((num_classes, num_classes), dtype=np.float64)
    np.add.at(conf, (np.asarray(labels, np.int64), np.asarray(predictions, np.int64)), 1.0)
    return conf


def soft_confusion(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Expected confusion (C, C): row c sums the predicted class probabilities of class c.

    It sees near-misses that a hard confusion matrix of a good model (few errors) does not.
    """
    probs = np.asarray(probs, dtype=np.float64)
    conf = np.zeros((probs.shape[1], probs.shape[1]), dtype=np.float64)
    np.add.at(conf, np.asarray(labels, np.int64), probs)
    return conf


def confusion_similarity(conf: np.ndarray) -> np.ndarray:
    """Symmetric class similarity from a confusion matrix: mean of the two confusion rates."""
    conf = np.asarray(conf, dtype=np.float64)
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {conf.shape}")
    rows = conf.sum(axis=1, keepdims=True)
    rates = np.divide(conf, rows, out=np.zeros_like(conf), where=rows > 0)
    sim = 0.5 * (rates + rates.T)
    np.fill_diagonal(sim, 0.0)
    return sim


def activity_similarity(rates: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Cosine similarity of the centred class-mean activity vectors (rates: (N, features))."""
    rates = np.asarray(rates, dtype=np.float64)
    labels = np.asarray(labels, np.int64)
    means = np.zeros((num_classes, rates.shape[1]))
    for c in range(num_classes):
        sel = labels == c
        if not sel.any():
            raise ValueError(f"class {c} has no sample to measure its activity")
        means[c] = rates[sel].mean(axis=0)
    means -= means.mean(axis=0, keepdims=True)
    norm = np.linalg.norm(means, axis=1, keepdims=True)
    unit = np.divide(means, norm, out=np.zeros_like(means), where=norm > 0)
    sim = unit @ unit.T
    np.fill_diagonal(sim, 0.0)
    return sim


def cluster_classes(sim: np.ndarray, groups: int, max_size: int | None = None) -> list[list[int]]:
    """Average-linkage agglomerative clustering of classes into ``groups`` clusters.

    Repeatedly merges the two most similar clusters whose union has at most ``max_size``
    classes (default ``ceil(C / groups)``, balanced groups so that no group is open for most
    inputs); if no pair fits, the pair with the smallest union (then the most similar) merges.
    Ties go to the lowest class indices. Returns groups sorted by their first class.
    """
    sim = np.asarray(sim, dtype=np.float64)
    n = sim.shape[0]
    if sim.shape != (n, n):
        raise ValueError(f"similarity must be square, got shape {sim.shape}")
    if not 1 <= groups <= n:
        raise ValueError(f"cannot make {groups} groups of {n} classes")
    cap = max_size if max_size is not None else math.ceil(n / groups)
    clusters = [[c] for c in range(n)]
    while len(clusters) > groups:
        best = None  # (fits, -union size if not fits, similarity, -i, -j)
        for i in range(len(clusters)):
            for j in range(i + 1, len(clusters)):
                a, b = clusters[i], clusters[j]
                size = len(a) + len(b)
                link = float(sim[np.ix_(a, b)].mean())
                key = (size <= cap, 0 if size <= cap else -size, link, -i, -j)
                if best is None or key > best[0]:
                    best = (key, i, j)
        _, i, j = best  # type: ignore[misc]
        clusters[i] = sorted(clusters[i] + clusters[j])
        del clusters[j]
    return sorted(clusters, key=lambda c: c[0])


def add_reuse(class_groups: list[list[int]], sim: np.ndarray,
              groups_per_class: int) -> list[list[int]]:
    """Each class also joins its ``groups_per_class - 1`` most similar other groups.

    A class's similarity to a group is its mean similarity to the group's original classes.
    """
    if groups_per_class < 1 or groups_per_class > len(class_groups):
        raise ValueError(f"groups_per_class must be in 1..{len(class_groups)}")
    sim = np.asarray(sim, dtype=np.float64)
    base = [list(g) for g in class_groups]
    out = [list(g) for g in class_groups]
    for c in range(sim.shape[0]):
        others = [gi for gi, g in enumerate(base) if c not in g]
        score = [float(sim[c, base[gi]].mean()) for gi in others]
        order = sorted(range(len(others)), key=lambda k: (-score[k], others[k]))
        for k in order[: groups_per_class - 1]:
            out[others[k]].append(c)
    return [sorted(g) for g in out]


def group_classes(sim: np.ndarray, groups: int, groups_per_class: int = 1,
                  max_size: int | None = None) -> list[list[int]]:
    """Explicit ``class_groups`` (one list of classes per group) from a class similarity."""
    return add_reuse(cluster_classes(sim, groups, max_size), sim, groups_per_class)


def round_robin(num_classes: int, groups: int, groups_per_class: int = 1) -> list[list[int]]:
    """The default grouping of :func:`simsnn.build.class_to_groups`, as explicit lists."""
    out: list[list[int]] = [[] for _ in range(groups)]
    for c in range(num_classes):
        for j in range(groups_per_class):
            out[(c * groups_per_class + j) % groups].append(c)
    return [sorted(set(g)) for g in out]
