"""What an answer may say, fitted on the validation split at export: when to refuse, and which classes are twins.

Refusal: a model whose label space has a refusal concept (`refusal: true` in the registry, "none") learns it like
any other class. An image is refused when the probability on it reaches `refusal_threshold`: the larger of a floor
and the share that all but the most doubtful 1 % of the validation images of the other concepts stay under, so
that what is drawn like the training data is seldom refused, while what is none of the concepts is.

Twins: joint classes of different scripts and different concepts that draw the same shape.
A concept answer cannot tell them apart without knowing the script, so an answer without a hint names both. Two
classes are twins when the registry declares them (`twins:`), or when the validation images of each put, on
average, at least `TWIN_LEAK` of their probability on the other (the two leaks added), TWIN_LIFT times what images
of other classes put there.
"""

from __future__ import annotations

import torch

from ..modeling import is_joint, label_scripts

REFUSAL_FLOOR = 0.3  # never refuse on less: below this the model leans to a concept
REFUSAL_CEILING = 0.6  # always refuse on more: "none" then outweighs every concept together
KNOWN_KEPT = 0.99  # the quantile of the refusal share of validation images of known concepts the threshold keeps
TWIN_LEAK = 0.06
TWIN_MIN_IMAGES = 10  # validation images of each class, for its leaks to mean something
TWIN_LIFT = 10.0  # and each draws that much more from the other than other classes on average draw from it


def class_concepts(config) -> list[str]:
    """The concept of each class (a joint model's classes share concepts)."""
    if is_joint(config):
        return [config.joint_label_concept[config.id2label[i]] for i in range(config.num_labels)]
    return [config.id2label[i] for i in range(config.num_labels)]


def refusal_mask(config) -> torch.Tensor:
    """1.0 for the classes of the model's refusal concepts (none: all zeros)."""
    refusal = set(getattr(config, "refusal_concepts", None) or [])
    return torch.tensor([float(c in refusal) for c in class_concepts(config)])


def fit_refusal_threshold(probabilities: torch.Tensor, labels: torch.Tensor, config) -> float | None:
    """The refusal threshold from calibrated class probabilities (images, classes) and class ids; None without a
    refusal concept or without images of known concepts to fit on."""
    mask = refusal_mask(config)
    if not mask.any():
        return None
    share = probabilities.float() @ mask
    known = share[mask[labels] == 0]
    if not len(known):
        return None
    kept = float(torch.quantile(known, KNOWN_KEPT))
    return float(min(max(kept, REFUSAL_FLOOR), REFUSAL_CEILING))


def declared_twins(config, pairs) -> list[tuple[str, str]]:
    """The model's joint classes for the registry's twins ((concept, script), (concept, script)), as label pairs."""
    if not is_joint(config):
        return []
    scripts = label_scripts(config)
    concepts = class_concepts(config)
    index = {(concepts[i], scripts[i]): config.id2label[i] for i in range(config.num_labels)}
    return [(index[a], index[b]) for a, b in pairs if a in index and b in index]


def found_twins(probabilities: torch.Tensor, labels: torch.Tensor, config) -> list[tuple[str, str]]:
    """Pairs of classes (different scripts, different concepts, neither a refusal) whose validation images put
    on each other, on average, TWIN_LEAK of their probability or more (both ways added), the most confused first."""
    if not is_joint(config) or not len(labels):
        return []
    n = config.num_labels
    totals = torch.zeros(n, n).index_add_(0, labels, probabilities.float())
    counts = torch.bincount(labels, minlength=n).clamp_min(1).unsqueeze(1)
    leak = totals / counts  # leak[a, b]: mean probability that images of class a put on class b
    both = leak + leak.T
    # what b draws from every class alike (a class the model favours) is no sign of a shared shape
    images = torch.bincount(labels, minlength=n)
    present = images > 0
    drawn = leak[present].sum(0) - leak.diagonal() * present  # what b draws from every other class
    others = (drawn.unsqueeze(0) - leak) / max(int(present.sum()) - 2, 1)  # … but a, on average
    lift = leak / others.clamp_min(1e-6)
    lift = (lift + lift.T) / 2
    scripts, concepts = label_scripts(config), class_concepts(config)
    refusal = refusal_mask(config)
    found = []
    for a in range(n):
        for b in range(a + 1, n):
            if scripts[a] == scripts[b] or concepts[a] == concepts[b] or refusal[a] or refusal[b]:
                continue
            if min(int(images[a]), int(images[b])) < TWIN_MIN_IMAGES:  # a leak of a few images is chance
                continue
            if float(both[a, b]) >= TWIN_LEAK and float(lift[a, b]) >= TWIN_LIFT:
                found.append((float(both[a, b]), config.id2label[a], config.id2label[b]))
    return [(a, b) for _, a, b in sorted(found, reverse=True)]


def fit_answer_rules(probabilities: torch.Tensor, labels: torch.Tensor, config, declared=()) -> dict:
    """Config fields `refusal_threshold` and `label_twins` (only those that apply to this model)."""
    fields = {}
    threshold = fit_refusal_threshold(probabilities, labels, config)
    if threshold is not None:
        fields["refusal_threshold"] = threshold
    order = {name: i for i, name in config.id2label.items()}
    twins = [
        tuple(sorted(pair, key=order.get))
        for pair in [*declared_twins(config, declared), *found_twins(probabilities, labels, config)]
    ]
    twins = list(dict.fromkeys(twins))
    if is_joint(config):
        fields["label_twins"] = [list(pair) for pair in twins]
    return fields
