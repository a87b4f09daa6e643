"""Properties of the hand-written GP-EI optimiser in optimizer.py (each test could fail)."""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import optimizer  # noqa: E402


def test_gp_interpolates_noise_free_data():
    rng = np.random.default_rng(0)
    X = rng.random((10, 2))
    y = np.sin(4 * X[:, 0]) + X[:, 1] ** 2
    theta = np.log([0.4, 0.4, 1.0, 1e-8])  # tiny noise: the posterior must pass through the data
    mean, var = optimizer.gp_predict(optimizer.gp_condition(X, y, theta), X)
    assert np.allclose(mean, y, atol=1e-4)
    assert var.max() < 1e-6
    _, var_far = optimizer.gp_predict(optimizer.gp_condition(X, y, theta), np.array([[5.0, 5.0]]))
    assert var_far[0] > 0.9  # far from data the prior variance (1.0) comes back


def test_length_scale_grows_for_irrelevant_dimension():
    rng = np.random.default_rng(1)
    X = rng.random((30, 2))
    y = optimizer.standardize(np.sin(6 * X[:, 0]))  # x1 plays no role
    ls = optimizer.fit_gp(X, y, rng)["ls"]
    assert ls[1] > 5 * ls[0], ls


def test_expected_improvement_matches_monte_carlo():
    rng = np.random.default_rng(2)
    for mean, std, best in [(0.0, 1.0, 0.0), (1.0, 0.5, 0.2), (-0.3, 2.0, 0.5), (2.0, 0.7, 0.0)]:
        f = mean + std * rng.standard_normal(1_000_000)
        mc = np.maximum(best - f, 0.0)
        ei = optimizer.expected_improvement(np.array([mean]), np.array([std]), best)[0]
        assert abs(ei - mc.mean()) < 4 * mc.std() / 1000 + 1e-6, (mean, std, best, ei, mc.mean())


def test_log_ei_is_finite_and_monotone_in_the_far_tail():
    z = -np.logspace(0, 10, 200)  # best - mean = z (std 1): EI ~ 1e-(huge), log EI must stay finite
    lei = optimizer.log_ei(np.zeros_like(z) - z, np.ones_like(z), 0.0)
    assert np.all(np.isfinite(lei)) and np.all(np.diff(lei) < 0)
    assert abs(lei[0] - math.log(0.0833155)) < 1e-6  # h(-1) = phi(1) - Phi(-1)


def test_unit_cube_round_trip():
    space = {"lr": ("log", 1e-4, 1e-1), "wd": ("real", 0.0, 0.5), "depth": ("int", 2, 9)}
    rng = np.random.default_rng(3)
    for _ in range(200):
        p = optimizer.from_unit(rng.random(3), space)
        assert isinstance(p["depth"], int) and 2 <= p["depth"] <= 9
        assert 1e-4 <= p["lr"] <= 1e-1 and 0.0 <= p["wd"] <= 0.5
        q = optimizer.from_unit(optimizer.to_unit(p, space), space)
        assert q["depth"] == p["depth"] and math.isclose(q["lr"], p["lr"]) and math.isclose(q["wd"], p["wd"])
    for depth in range(2, 10):  # every integer owns an equal slice, including the end points
        unit = optimizer.to_unit({"lr": 1e-3, "wd": 0, "depth": depth}, space)
        assert optimizer.from_unit(unit, space)["depth"] == depth
    assert optimizer.from_unit(np.array([0.0, 0.0, 1.0]), space)["depth"] == 9
    mid = optimizer.from_unit(np.array([0.5, 0.5, 0.5]), space)["lr"]  # log: the midpoint is geometric
    assert math.isclose(mid, math.sqrt(1e-4 * 1e-1))


def test_beats_random_search_on_branin():
    f, space, f_min = optimizer.BENCHMARKS["branin"]
    gp = min(v for _, v in optimizer.minimize(f, space, n_init=5, n_iter=20, seed=0))
    rand = min(v for _, v in optimizer.random_search(f, space, 25, seed=0))
    assert gp - f_min < 0.05 and gp < rand, (gp, rand)


def test_pending_points_give_distinct_suggestions():
    f, space, _ = optimizer.BENCHMARKS["branin"]
    observed = optimizer.minimize(f, space, n_init=5, n_iter=3, seed=4)
    rng = np.random.default_rng(5)
    batch = optimizer.suggest_batch(space, observed, rng, k=4)
    units = np.array([optimizer.to_unit(p, space) for p in batch])
    assert len(batch) == 4
    assert min(np.linalg.norm(a - b) for i, a in enumerate(units) for b in units[i + 1:]) > optimizer.MIN_DIST
    alone = optimizer.suggest(space, observed, np.random.default_rng(6))
    other = optimizer.suggest(space, observed, np.random.default_rng(6), pending=[alone])
    assert np.linalg.norm(optimizer.to_unit(other, space) - optimizer.to_unit(alone, space)) > 0.01


def test_failed_trials_and_constant_outputs():
    z = optimizer.standardize([1.0, float("nan"), 3.0, float("inf")])
    assert np.all(np.isfinite(z)) and z[1] == z[3] == z.max()  # failures count as the worst value
    assert np.all(optimizer.standardize([2.0, 2.0, 2.0]) == 0)
    space = {"x": ("real", 0.0, 1.0), "n": ("int", 1, 3)}
    observed = [({"x": 0.1 * i, "n": 1 + i % 3}, 5.0) for i in range(6)]  # all equal
    p = optimizer.suggest(space, observed, np.random.default_rng(0))
    assert 0 <= p["x"] <= 1 and p["n"] in (1, 2, 3)
