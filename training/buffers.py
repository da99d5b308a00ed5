"""What each method trains on at step t: bounded, logged uid lists.

D is the size of step t's own data. Cumulative-Exp and Cumulative-Equal keep a buffer of 2D: all
D new samples plus D old ones, taken from the past steps in shares that halve per step back (Exp)
or are equal (Equal). Which policy a method uses is its record in training/methods.py (Sequential
and Patching see only the new data; Cumulative-All, Restart and Oracle see everything so far).
Picks within a step are by a hash of (uid, seed, step), so a buffer is a fixed, reproducible list.
"""
from __future__ import annotations

import hashlib


def exp_shares(past_steps: int) -> list[float]:
    """Shares of the old half per past step (oldest first), halving per step back in time."""
    w = [2.0 ** -(past_steps - k) for k in range(past_steps)]
    total = sum(w)
    return [x / total for x in w]


def equal_shares(past_steps: int) -> list[float]:
    return [1.0 / past_steps] * past_steps


def allocate(total: int, shares: list[float], caps: list[int]) -> list[int]:
    """Integer counts summing to min(total, sum(caps)), in proportion to `shares` (largest remainders
    first), never above a step's cap; what a small step cannot give goes to the others in proportion."""
    counts = [0] * len(shares)
    target = min(total, sum(caps))
    active = [i for i in range(len(shares)) if caps[i] > 0]
    while sum(counts) < target and active:
        remaining = target - sum(counts)
        weight = sum(shares[i] for i in active)
        ideal = {i: remaining * shares[i] / weight for i in active}
        added = 0
        for i in active:
            add = min(int(ideal[i]), caps[i] - counts[i])
            counts[i] += add
            added += add
        left = remaining - added
        for i in sorted(active, key=lambda i: ideal[i] - int(ideal[i]), reverse=True):
            if left == 0:
                break
            if counts[i] < caps[i]:
                counts[i] += 1
                left -= 1
                added += 1
        active = [i for i in active if counts[i] < caps[i]]
        if added == 0:
            break
    return counts


def _pick(uids: list[str], n: int, seed: int, step_label: str) -> list[str]:
    ranked = sorted(uids, key=lambda u: hashlib.blake2b(f"{seed}/{step_label}/{u}".encode(), digest_size=8).digest())
    return sorted(ranked[:n])


def _new(steps_uids, step_labels, t, seed):
    return [(u, step_labels[t]) for u in steps_uids[t]]


def _all(steps_uids, step_labels, t, seed):
    return [(u, step_labels[k]) for k in range(t + 1) for u in steps_uids[k]]


def _shared(shares):
    def policy(steps_uids, step_labels, t, seed):
        if t == 0:
            return _new(steps_uids, step_labels, t, seed)
        counts = allocate(len(steps_uids[t]), shares(t), [len(steps_uids[k]) for k in range(t)])
        old = [(u, step_labels[k]) for k in range(t) for u in _pick(steps_uids[k], counts[k], seed, step_labels[k])]
        return old + _new(steps_uids, step_labels, t, seed)
    return policy


# The buffer policies a method (training/methods.py) names: new data only, everything so far, or the new data
# plus as much old data taken in exponentially decaying / equal shares per past step.
POLICIES = {"new": _new, "all": _all, "exp": _shared(exp_shares), "equal": _shared(equal_shares)}


def compose_buffer(policy: str, steps_uids: list[list[str]], step_labels: list[str], t: int,
                   seed: int = 0) -> list[tuple[str, str]]:
    """(uid, source step) pairs a method with buffer `policy` trains on at step t (0-based)."""
    return POLICIES[policy](steps_uids, step_labels, t, seed)
