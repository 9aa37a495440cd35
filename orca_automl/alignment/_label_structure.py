"""A label-aware term for the align stage: keep the target's label structure while aligning.

A distance such as MMD or sliced Wasserstein moves the embedded target towards the
reference distribution without looking at labels, so it may pull the classes of the target
on top of each other. RECRAFT (Tran et al., "Rethinking Cross-Modal Fine-Tuning", AISTATS
2026) adds a feature-label distortion term to ORCA's alignment stage for that reason. The
term here is in that spirit but is not the paper's estimator: a closed-form, scale-free
measure of label structure that costs two small matmuls per batch, namely the share of the
features' total variance that lies between classes (Fisher's ratio of trace scatters).
"""

from __future__ import annotations

import torch

from orca_automl.alignment._common import check_batch


def label_structure_loss(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Minus the between-class share of the variance: -tr(S_between) / tr(S_total).

    S_total is the scatter of the features (n, d) around their mean mu, S_between =
    sum_c n_c (mu_c - mu)(mu_c - mu)^T over the classes of `labels` (n,). The value lies in
    [-1, 0]: 0 when the labels explain none of the variance (one class, equal class means,
    or features that do not vary), -1 when every class sits on its mean. It is invariant to
    a global shift, scale or rotation of the features, so its weight means the same for any
    backbone. Minimising it spreads the class means apart relative to the spread within
    classes. Gradients flow into `features`.

    The total is computed as between + within (both sums of squares, hence the bounds hold
    in floating point too), plus machine epsilon times sum ||x||^2: the rounding floor of the
    centred features, so features identical up to rounding read ~0 instead of noise.

    Example:
        >>> import torch
        >>> labels = torch.tensor([0, 0, 1, 1])
        >>> features = torch.tensor([[0.0], [0.2], [4.0], [4.2]], requires_grad=True)
        >>> loss = label_structure_loss(features, labels)
        >>> round(loss.item(), 3)
        -0.998
        >>> loss.backward()
    """
    check_batch(features, labels)
    x = features.to(torch.promote_types(features.dtype, torch.float32))
    classes, index = torch.unique(labels, return_inverse=True)
    if len(classes) < 2:
        return x.new_zeros(())  # one class: no label structure to keep (and no gradient)
    centred = x - x.mean(0)
    onehot = torch.nn.functional.one_hot(index, len(classes)).to(x)
    counts = onehot.sum(0)
    means = (onehot.T @ centred) / counts[:, None]
    overall = (counts @ means) / len(x)  # ~0; exact weighted mean of the class means
    between = (counts * (means - overall).square().sum(1)).sum()
    within = (centred - means[index]).square().sum()
    floor = torch.finfo(x.dtype).eps * x.detach().square().sum() + torch.finfo(x.dtype).tiny
    return -between / (between + within + floor)
