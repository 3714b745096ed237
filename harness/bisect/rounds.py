"""Rounds that use every free slot across several builds (pure, vectorized numpy).

With ``slots`` boots booting at once, a round of eight boots of one build wastes them when
the failure rate is high: the second boot of a build at rate 0.6 teaches little once the
first one failed. ``spread_round`` builds the round greedily, one boot at a time, each to
the build (any build, the same one again included) that adds the most to the mutual
information between the culprit and the round's outcomes. The round's outcomes are
enumerated exactly (at most ``2**slots`` of them) under the posterior given the culprit
``c``: a boot of build ``b`` fails with ``q[c]`` when ``b >= c`` and with ``g[c]``
otherwise (the posterior predictive rates of ``harness.bisect.model.evaluate``), boots
independent given ``c``. That ignores the correlation through an uncertain rate, which
makes repeats of one build look a little better than they are; the posterior itself stays
exact.

A boot is added to the round only while its gain is at least ``keep`` times the round's
first boot's gain (information per boot must not collapse for the sake of filling slots),
so a round uses 1 to ``slots`` boots on 1 to ``slots`` builds. Leading axes are
independent campaigns: the benchmark chooses the rounds of hundreds at once.
"""

from __future__ import annotations

import numpy as np

from harness.bisect.model import FloatArray, IntArray
from harness.bisect.policy import information_per_build

LOG2 = np.log(2.0)
KEEP = 0.7  # a boot joins the round while its gain is >= KEEP x the first boot's
CANDIDATES = 12  # builds considered per round: the best by one-boot information


def _xlogx(p: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, p * np.log(p), 0.0)


def _h_nats(p: FloatArray) -> FloatArray:
    return -(_xlogx(p) + _xlogx(1.0 - p))


def spread_rounds(post: FloatArray, q: FloatArray, g: FloatArray, slots: int,
                  keep: float = KEEP, candidates: int = CANDIDATES,
                  usable: IntArray | None = None) -> IntArray:
    """Boots per build for the next round of each campaign: shape ``(R, n)`` for arrays
    ``post``, ``q``, ``g`` of shape ``(R, n)`` (a single campaign may pass shape ``(n,)``
    and gets ``(n,)`` back). Every row has at least one boot and at most ``slots``."""
    if slots < 1:
        raise ValueError("slots must be >= 1")
    single = post.ndim == 1
    P, Q, G = (np.atleast_2d(np.asarray(x, dtype=np.float64)) for x in (post, q, g))
    R, n = P.shape
    gain1 = information_per_build(P, Q, G)
    if usable is not None:
        gain1 = np.where(np.atleast_2d(np.asarray(usable, dtype=bool)), gain1, -1.0)
    if (gain1.max(axis=1) < 0).any():
        raise ValueError("no build can be booted")
    k = min(candidates, n)
    cand = np.argsort(-gain1, axis=1, kind="stable")[:, :k]  # (R, k)
    ok = np.take_along_axis(gain1, cand, axis=1) >= 0
    builds = np.arange(n)
    # F[r, j, c]: P(a boot of candidate j fails | culprit c)
    bad = cand[:, :, None] >= builds[None, None, :]
    F = np.where(bad, Q[:, None, :], G[:, None, :])
    hF = (_h_nats(F) * P[:, None, :]).sum(axis=2)  # (R, k): E_c h(F) = H(Y_j | C)
    Ft = np.ascontiguousarray(F.transpose(0, 2, 1))  # (R, n, k)
    alloc = np.zeros((R, n), dtype=np.int64)
    M = P[:, None, :].copy()  # (R, Y, n): P(c) P(y | c), Y outcomes so far
    h_cond = np.zeros(R)  # H(Y | C) of the round so far (additive given c)
    h_y = np.zeros(R)  # H(Y)
    first = np.zeros(R)
    active = np.ones(R, dtype=bool)
    rows = np.arange(R)
    for step in range(slots):
        p1 = M @ Ft  # (R, Y, k): P(y, this boot fails), batched BLAS
        p0 = M.sum(axis=2)[:, :, None] - p1
        h_new = -(_xlogx(p1) + _xlogx(np.maximum(p0, 0.0))).sum(axis=1)  # (R, k)
        mi = h_new - (h_cond[:, None] + hF)
        mi = np.where(ok, mi, -np.inf)
        j = mi.argmax(axis=1)
        best = mi[rows, j]
        gain = best - (h_y - h_cond)
        if step == 0:
            first = np.maximum(gain, 1e-300)
        else:
            active &= gain >= keep * first
        if not active.any():
            break
        b = cand[rows, j]
        alloc[rows[active], b[active]] += 1
        f = F[rows, j][:, None, :]  # (R, 1, n)
        grown = np.concatenate([M * (1.0 - f), M * f], axis=1)
        # inactive campaigns keep their outcome set (pad so the arrays stay aligned)
        M = np.where(active[:, None, None], grown,
                     np.concatenate([M, np.zeros_like(M)], axis=1))
        h_cond = np.where(active, h_cond + hF[rows, j], h_cond)
        h_y = np.where(active, h_new[rows, j], h_y)
    return alloc[0] if single else alloc
