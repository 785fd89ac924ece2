"""The two semantics of the mixtures (printed equations vs the authors' released code), each checked against an
independent restatement (the paper's eqs. 3-5 and the authors' code, step by step) on tiny tensors, plus the
sampler's step probabilities (independent per step for 'authors', joint for 'paper_eq') tested statistically with a
fixed seed."""

from __future__ import annotations

import itertools

import pytest
import torch
from scipy import stats

from mixbench.pretrain.mixing import (
    box_masks,
    global_mixture,
    global_mixture_authors,
    global_weights,
    global_weights_authors,
    partner_images,
    region_mixture,
    region_mixture_authors,
    region_weights_authors,
)
from mixbench.pretrain.preprocessor import MixPreprocessor, source_weights
from mixbench.pretrain.sampler import MixPlan, MixSampler

H, W = 5, 6


def _images(n: int, batch: int = 3, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 2, H, W, generator=g, dtype=torch.float64) for _ in range(n)]


def _boxes(n: int, batch: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    y1 = torch.randint(0, H - 1, (n - 1, batch), generator=g)
    x1 = torch.randint(0, W - 1, (n - 1, batch), generator=g)
    y2 = (y1 + 1 + torch.randint(0, H, (n - 1, batch), generator=g)).clamp(max=H)
    x2 = (x1 + 1 + torch.randint(0, W, (n - 1, batch), generator=g)).clamp(max=W)
    return torch.stack([y1, x1, y2, x2], -1)


def _inside(boxes: torch.Tensor, k: int, b: int, y: int, x: int) -> bool:
    y1, x1, y2, x2 = (int(v) for v in boxes[k, b])
    return y1 <= y < y2 and x1 <= x < x2


def _all_step_patterns(n1: int, batch: int) -> torch.Tensor:
    """(n - 1, batch) bool covering every on/off pattern of the steps across the batch columns."""
    patterns = list(itertools.product([False, True], repeat=n1))
    return torch.tensor([patterns[b % len(patterns)] for b in range(batch)]).T


# --- the authors' code, restated per sample and pixel with python floats ---------------------------------------


@pytest.mark.parametrize("n", [2, 3, 4])
def test_global_authors_matches_restatement(n):
    batch = 2 ** (n - 1)
    images = _images(n, batch)
    lams = torch.rand(n - 1, batch, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    steps = _all_step_patterns(n - 1, batch)
    out = global_mixture_authors(images, lams, steps)
    for b, c, y, x in itertools.product(range(batch), range(2), range(H), range(W)):
        base = float(images[-1][b, c, y, x])  # the sample itself
        for k in range(n - 1):  # num_mix steps, each taken on its own
            if steps[k, b]:
                lam = float(lams[k, b])
                base = lam * base + (1 - lam) * float(images[k][b, c, y, x])
        assert float(out[b, c, y, x]) == pytest.approx(base, abs=1e-12)


@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("decay", [0.2, 1.0])
def test_region_authors_matches_restatement(n, decay):
    batch = 2 ** (n - 1)
    images = _images(n, batch)
    boxes = _boxes(n, batch, seed=n)
    steps = _all_step_patterns(n - 1, batch)
    out = region_mixture_authors(images, box_masks(boxes, H, W), decay, steps)
    for b, c, y, x in itertools.product(range(batch), range(2), range(H), range(W)):
        value = float(images[-1][b, c, y, x])
        if steps[0, b]:  # step 0 taken: the whole base image is decayed first
            value *= decay
        for k in range(n - 1):  # then each taken step pastes its partner's box at full strength
            if steps[k, b] and _inside(boxes, k, b, y, x):
                value = float(images[k][b, c, y, x])
        assert float(out[b, c, y, x]) == pytest.approx(value, abs=1e-12)


# --- where the decay lands ------------------------------------------------------------------------------------


def _constant_sources(n: int, batch: int = 4) -> list[torch.Tensor]:
    """Partner k is the constant 10 (k + 1), the sample is 1: every output value names its source."""
    return [torch.full((batch, 1, H, W), 10.0 * (k + 1)) for k in range(n - 1)] + [torch.ones(batch, 1, H, W)]


@pytest.mark.parametrize("n", [2, 4])
def test_authors_decay_hits_only_the_base_outside_every_pasted_box(n):
    decay = 0.2
    boxes = _boxes(n, 4, seed=7)
    steps = torch.ones(n - 1, 4, dtype=torch.bool)
    out = region_mixture_authors(_constant_sources(n), box_masks(boxes, H, W), decay, steps)
    for b, y, x in itertools.product(range(4), range(H), range(W)):
        covering = [k for k in range(n - 1) if _inside(boxes, k, b, y, x)]
        expected = 10.0 * (covering[-1] + 1) if covering else decay  # last pasted box wins, undecayed
        assert float(out[b, 0, y, x]) == pytest.approx(expected)


@pytest.mark.parametrize("n", [2, 4])
def test_printed_equation_decays_only_the_first_pasted_box(n):
    decay = 0.2
    boxes = _boxes(n, 4, seed=8)
    sources = _constant_sources(n)
    # eqs. 4-5 take sources in the paper's order I_1 .. I_n; the decayed term is (1 - M_1) I_2, inside box 1.
    # Eq. 5 keeps the previous mixture inside box k (M_k = 0) and lays I_{k+1} outside, so the decayed box
    # survives exactly where every later box covers it.
    out = region_mixture(sources, box_masks(boxes, H, W), decay)
    i2 = float(sources[1][0, 0, 0, 0])
    for b, y, x in itertools.product(range(4), range(H), range(W)):
        decayed = all(_inside(boxes, k, b, y, x) for k in range(n - 1))
        assert (float(out[b, 0, y, x]) == pytest.approx(decay * i2)) == decayed


def test_authors_skipped_first_step_means_no_decay():
    n, decay = 3, 0.2
    boxes = _boxes(n, 4, seed=9)
    steps = torch.tensor([[False] * 4, [True] * 4])  # step 0 skipped, step 1 taken
    out = region_mixture_authors(_constant_sources(n), box_masks(boxes, H, W), decay, steps)
    values = set(out.unique().tolist())
    assert values <= {1.0, 20.0} and 20.0 in values  # the sample undecayed and partner 2's box; nothing else
    untouched = region_mixture_authors(_constant_sources(n), box_masks(boxes, H, W), decay, ~steps & steps)
    assert torch.equal(untouched, torch.ones_like(untouched))


# --- the sample's share of the global mixture -------------------------------------------------------------------


def _one_hot_sources(n: int, batch: int) -> list[torch.Tensor]:
    return [torch.eye(n, dtype=torch.float64)[j].view(1, n, 1, 1).expand(batch, n, 2, 2) for j in range(n)]


@pytest.mark.parametrize("n", [2, 4])
def test_sample_share_of_global_mixture_follows_each_semantics(n):
    batch = 2 ** (n - 1)
    lams = torch.rand(n - 1, batch, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    steps = _all_step_patterns(n - 1, batch)
    sources = _one_hot_sources(n, batch)
    # printed eq. 3: the sample I_n enters last, with a_{n-1} (n > 2), or b_1 = 1 - a_1 (n = 2)
    paper = global_mixture(sources, lams)[:, :, 0, 0].T  # (n, N) shares
    torch.testing.assert_close(paper[-1], 1 - lams[0] if n == 2 else lams[-1])
    torch.testing.assert_close(global_weights(lams), paper)
    # authors: the sample is the base, scaled by lam at every taken step
    authors = global_mixture_authors(sources, lams, steps)[:, :, 0, 0].T
    expected = torch.tensor([float(torch.prod(lams[steps[:, b], b])) for b in range(batch)], dtype=torch.float64)
    torch.testing.assert_close(authors[-1], expected)
    torch.testing.assert_close(global_weights_authors(lams, steps), authors)


def test_region_authors_pixel_shares():
    n, batch = 4, 8
    masks = box_masks(_boxes(n, batch, seed=4), H, W)
    steps = _all_step_patterns(n - 1, batch)
    sources = [torch.eye(n)[j].view(1, n, 1, 1).expand(batch, n, H, W) for j in range(n)]
    mixed = region_mixture_authors(sources, masks, 1.0, steps)  # channel j = where source j shows
    torch.testing.assert_close(region_weights_authors(masks, steps), mixed.mean((2, 3)).T)


@pytest.mark.parametrize("kind", ["global", "region"])
def test_source_weights_of_an_authors_plan_reconstruct_the_mixed_batch(kind):
    n, batch = 3, 64
    s = MixSampler(seed=5)
    plan = s.global_plan(batch, n, 0.5, "authors") if kind == "global" else s.region_plan(
        batch, n, 0.5, H, W, 1.0, "authors")
    x = torch.eye(batch).view(batch, batch, 1, 1).expand(batch, batch, H, W)  # sample i = one-hot channel i
    mixed = MixPreprocessor.apply_plan(x, plan).mean((2, 3))  # (N, N): share of sample j in mixed sample i
    w = source_weights(plan, H, W)  # (n, N) over [x[perms[0]], ..., x]
    srcs = [p for p in plan.perms] + [torch.arange(batch)]
    by_weights = torch.zeros(batch, batch)
    for j, idx in enumerate(srcs):
        by_weights[torch.arange(batch), idx] += w[j]
    torch.testing.assert_close(by_weights, mixed)
    assert (~plan.mixed).any() and plan.mixed.any()


# --- step probabilities -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["global", "region"])
def test_authors_steps_are_independent_with_probability_p(kind):
    n, p, batch = 4, 0.3, 60_000
    s = MixSampler(seed=123)
    plan = s.global_plan(batch, n, p, "authors") if kind == "global" else s.region_plan(
        batch, n, p, 16, 16, 0.2, "authors")
    steps = plan.steps  # (3, N)
    # the 8 on/off patterns follow the product of independent Bernoulli(p): chi-square goodness of fit
    code = (steps.long() * torch.tensor([[1], [2], [4]])).sum(0)
    observed = torch.bincount(code, minlength=8).double()
    ones = torch.tensor([bin(c).count("1") for c in range(8)], dtype=torch.float64)
    expected = batch * p**ones * (1 - p) ** (3 - ones)
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    assert chi2 < stats.chi2.ppf(0.999, df=7), (observed, expected)
    # a joint draw (all steps together) would fail this: P(all three) would be p instead of p^3
    assert float(observed[7] / batch) == pytest.approx(p**3, abs=0.004)
    assert torch.equal(plan.mixed, steps.any(0))


def test_paper_eq_takes_all_steps_together():
    plan = MixSampler(seed=3).region_plan(20_000, 5, 0.3, 16, 16, 0.2)
    assert plan.semantics == "paper_eq"
    assert torch.equal(plan.steps, plan.mixed.expand(4, -1))
    assert float(plan.mixed.double().mean()) == pytest.approx(0.3, abs=0.012)


def test_paper_eq_draw_order():
    # permutations, then the Beta coefficients, then one Bernoulli per sample: a seeded run's draws are fixed
    a, b = MixSampler(seed=4), MixSampler(seed=4)
    plan = a.global_plan(8, 3, 0.5)
    rng = b.rng
    perms = [rng.permutation(8) for _ in range(2)]
    alphas = rng.beta(1.0, 1.0, size=(2, 8))
    mixed = rng.random(size=(8,)) < 0.5
    assert plan.perms.tolist() == [list(q) for q in perms]
    torch.testing.assert_close(plan.alphas, torch.from_numpy(alphas).float())
    assert plan.mixed.tolist() == mixed.tolist()


# --- the preprocessor with each semantics -------------------------------------------------------------------------


def test_preprocessor_authors_equals_restated_mix_on_both_views():
    pre = MixPreprocessor(
        global_mix=dict(n=3, p=0.6, semantics="authors"),
        region_mix=dict(n=4, p=0.6, lambda_decay=0.2, semantics="authors"),
        seed=21,
    )
    g = torch.Generator().manual_seed(0)
    q, k = (torch.randint(0, 256, (6, 3, H, W), generator=g, dtype=torch.uint8) for _ in range(2))
    out = pre({"inputs": [q, k]}, training=True)
    plans = out["data_samples"]["mix_plans"]
    assert [(p.kind, p.semantics) for p in plans] == [("global", "authors"), ("region", "authors")]
    for view, raw in zip(out["inputs"], (q, k)):  # both views mixed alike, G then R
        x = pre.normalize(raw)
        g_plan, r_plan = plans
        x = global_mixture_authors(partner_images(x, g_plan.perms), g_plan.alphas, g_plan.steps)
        x = region_mixture_authors(partner_images(x, r_plan.perms), box_masks(r_plan.boxes, H, W), 0.2, r_plan.steps)
        torch.testing.assert_close(view, x)
    assert pre.summary()["region"]["semantics"] == "authors"
    assert MixPreprocessor(global_mix=dict(n=2, p=0.5)).summary()["global"]["semantics"] == "paper_eq"


def test_bad_semantics_is_named():
    with pytest.raises(ValueError, match="semantics"):
        MixPreprocessor(global_mix=dict(n=2, p=0.5, semantics="code"))
    with pytest.raises(ValueError, match="semantics"):
        MixSampler(seed=0).global_plan(4, 2, 0.5, "code")
    with pytest.raises(ValueError, match="semantics"):
        MixPlan(kind="global", perms=torch.zeros(1, 2, dtype=torch.long), alphas=torch.zeros(1, 2),
                mixed=torch.zeros(2).bool(), semantics="eq")
