"""The hand-written Bayesian optimiser the sweep uses, and its benchmark.

    python sweep.py --benchmark branin|hartmann6   # GP-EI against random search

What lives in this module, top to bottom:

  1. search space <-> unit cube      to_unit, from_unit
  2. Gaussian process (Matern-5/2)   gp_condition, fit_gp, gp_predict
  3. expected improvement            log_ei, expected_improvement, maximize_ei
  4. ask / tell                      suggest, suggest_batch, minimize
  5. benchmark                       branin, hartmann6, random_search, run_benchmark

The optimiser minimises. A search space maps a name to ("real", lo, hi),
("log", lo, hi) or ("int", lo, hi). All modelling happens in the unit cube
[0, 1]^d on standardised outputs, so every default below is scale-free. It
knows nothing of training: sweep.py asks it for points and tells it losses.
"""
import math
import time

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve, solve_triangular
from scipy.optimize import minimize as scipy_minimize
from scipy.special import erfcx, ndtr
from scipy.stats import yeojohnson
from threadpoolctl import threadpool_limits  # ships with scikit-learn

# ----------------------------------------------------------------------------
# 1. search space <-> unit cube

def to_unit(params, space):
    """Map params to u in [0,1]^d.
    real: u = (x-lo)/(hi-lo);  log: u = log(x/lo)/log(hi/lo);
    int:  u = (x-lo+0.5)/(hi-lo+1), the centre of the integer's slice of [0,1]."""
    u = []
    for name, (kind, lo, hi) in space.items():
        x = params[name]
        if kind == "log":
            u.append(math.log(x / lo) / math.log(hi / lo))
        elif kind == "int":
            u.append((x - lo + 0.5) / (hi - lo + 1))
        else:
            u.append((x - lo) / (hi - lo))
    return np.array(u, dtype=float)


def from_unit(u, space):
    """Inverse of to_unit. int: x = lo + floor(u (hi-lo+1)), so each integer owns
    an equal slice of [0,1]; results are clipped to [lo, hi] against round-off."""
    params = {}
    for ui, (name, (kind, lo, hi)) in zip(np.clip(u, 0.0, 1.0), space.items()):
        if kind == "log":
            x = lo * math.exp(ui * math.log(hi / lo))
        elif kind == "int":
            x = int(lo + math.floor(ui * (hi - lo + 1)))
        else:
            x = lo + ui * (hi - lo)
        x = min(max(x, lo), hi)
        params[name] = int(x) if kind == "int" else float(x)
    return params


# ----------------------------------------------------------------------------
# 2. Gaussian process with a Matern-5/2 ARD kernel
#
# Hyper-parameters live in log space: theta = log[ls_1..ls_d, signal_var, noise_var].
# Bounds are in unit-cube units / standardised-output units, hence fixed.
LOG_BOUNDS_LS = (math.log(0.01), math.log(10.0))
LOG_BOUNDS_VAR = (math.log(0.05), math.log(20.0))
LOG_BOUNDS_NOISE = (math.log(1e-6), math.log(1.0))
LS_PRIOR = (math.log(0.5), 1.0)  # mild log-normal prior (mean, std) on each log length-scale
SQRT5 = math.sqrt(5.0)


def matern52(r, var):
    """k(r) = var (1 + sqrt5 r + 5 r^2 / 3) exp(-sqrt5 r), r = scaled distance."""
    return var * (1.0 + SQRT5 * r + (5.0 / 3.0) * r**2) * np.exp(-SQRT5 * r)


def scaled_sqdist(A, B, ls):
    """D[i,j,k] = (A_ik - B_jk)^2 / ls_k^2, so r_ij^2 = sum_k D[i,j,k]."""
    return ((A[:, None, :] - B[None, :, :]) / ls) ** 2


def gp_condition(X, y, theta):
    """Posterior pieces for fixed theta: K = k(X,X) + noise I = L L^T, alpha = K^-1 y.
    If Cholesky fails (near-duplicate inputs) add growing jitter to the diagonal."""
    d = X.shape[1]
    ls, var, noise = np.exp(theta[:d]), math.exp(theta[d]), math.exp(theta[d + 1])
    D = scaled_sqdist(X, X, ls)
    r = np.sqrt(D.sum(-1))
    Kf = matern52(r, var)
    for jitter in (0.0, 1e-8, 1e-6, 1e-4):
        try:
            L = cho_factor(Kf + (noise + jitter) * np.eye(len(X)), lower=True)
            break
        except LinAlgError:
            pass
    else:
        raise LinAlgError("kernel matrix not positive definite even with jitter")
    return dict(X=X, y=y, theta=theta, ls=ls, var=var, noise=noise,
                D=D, r=r, Kf=Kf, L=L, alpha=cho_solve(L, y))


def neg_log_posterior(theta, X, y):
    """-log p(y|X,theta) - log prior(theta) and its gradient.
    -log p = y^T alpha / 2 + sum_i log L_ii + (n/2) log 2pi;
    d(-log p)/d theta_j = -tr((alpha alpha^T - K^-1) dK/dtheta_j) / 2, with
    dK/dlog ls_k = (5/3) var (1 + sqrt5 r) exp(-sqrt5 r) D_k,  dK/dlog var = Kf,
    dK/dlog noise = noise I.  Prior: log ls_k ~ N(LS_PRIOR)."""
    n, d = X.shape
    try:
        gp = gp_condition(X, y, theta)
    except LinAlgError:
        return 1e10, np.zeros_like(theta)
    L, alpha, r = gp["L"], gp["alpha"], gp["r"]
    nll = 0.5 * y @ alpha + np.log(np.diag(L[0])).sum() + 0.5 * n * math.log(2 * math.pi)
    W = np.outer(alpha, alpha) - cho_solve(L, np.eye(n))
    dK_dls = ((5.0 / 3.0) * gp["var"] * (1 + SQRT5 * r) * np.exp(-SQRT5 * r))[:, :, None] * gp["D"]
    grad = -0.5 * np.concatenate([np.einsum("ij,ijk->k", W, dK_dls),
                                  [(W * gp["Kf"]).sum(), np.trace(W) * gp["noise"]]])
    mu, sd = LS_PRIOR
    nll += 0.5 * (((theta[:d] - mu) / sd) ** 2).sum()
    grad[:d] += (theta[:d] - mu) / sd**2
    return nll, grad


def fit_gp(X, y, rng, theta0=None, n_restarts=3):
    """theta* = argmin neg_log_posterior by L-BFGS-B, started from the previous
    optimum theta0 (if any), a default guess and random points in the bounds."""
    d = X.shape[1]
    bounds = np.array([LOG_BOUNDS_LS] * d + [LOG_BOUNDS_VAR, LOG_BOUNDS_NOISE])
    starts = [np.r_[np.full(d, LS_PRIOR[0]), 0.0, math.log(1e-3)]]
    if theta0 is not None and len(theta0) == d + 2:
        starts.insert(0, np.clip(theta0, bounds[:, 0], bounds[:, 1]))
    starts += list(rng.uniform(bounds[:, 0], bounds[:, 1], size=(n_restarts, d + 2)))
    best = None
    for t0 in starts:
        res = scipy_minimize(neg_log_posterior, t0, args=(X, y), jac=True,
                             method="L-BFGS-B", bounds=bounds)
        if best is None or res.fun < best.fun:
            best = res
    return gp_condition(X, y, best.x)


def gp_predict(gp, Xs):
    """Latent posterior at Xs: mean = k*^T alpha, var = k(x,x) - k*^T K^-1 k*."""
    Ks = matern52(np.sqrt(scaled_sqdist(Xs, gp["X"], gp["ls"]).sum(-1)), gp["var"])
    mean = Ks @ gp["alpha"]
    v = solve_triangular(gp["L"][0], Ks.T, lower=True)  # K^-1 = L^-T L^-1
    var = gp["var"] - (v**2).sum(0)
    return mean, np.maximum(var, 1e-12)


# ----------------------------------------------------------------------------
# 3. expected improvement, computed as log EI so it never under-flows to 0

def log_h(z):
    """log h(z) with h(z) = phi(z) + z Phi(z), so that EI = sigma h((best-mean)/sigma).
    z > -1: direct.  z <= -1: h = phi(z) (1 + z m(z)) with the Mills ratio
    m(z) = Phi(z)/phi(z) = sqrt(pi/2) erfcx(-z/sqrt2), stable in the far tail.
    z < -1e4: 1 + z m(z) cancels, use the asymptote h ~ phi(z) / z^2."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    log_phi = -0.5 * z**2 - 0.5 * math.log(2 * math.pi)
    a, c = z > -1, z < -1e4
    b = ~a & ~c
    out[a] = np.log(np.exp(log_phi[a]) + z[a] * ndtr(z[a]))
    out[b] = log_phi[b] + np.log1p(z[b] * math.sqrt(math.pi / 2) * erfcx(-z[b] / math.sqrt(2)))
    out[c] = log_phi[c] - 2 * np.log(-z[c])
    return out


def log_ei(mean, std, best):
    """log EI(x) = log E[max(best - f(x), 0)] = log std + log h((best - mean)/std)."""
    return np.log(std) + log_h((best - mean) / std)


def expected_improvement(mean, std, best):
    """EI = std (z Phi(z) + phi(z)), z = (best - mean)/std (minimisation)."""
    return np.exp(log_ei(mean, std, best))


def maximize_ei(gp, best, x_best, rng, n_random=2000, n_local=600, n_polish=5):
    """Unit-cube candidates sorted by decreasing EI. Score random points plus
    Gaussian perturbations of the incumbent x_best (where EI's sharp local peaks
    are), then polish the top n_polish with L-BFGS-B on -log EI."""
    d = len(x_best)
    scales = np.repeat([0.2, 0.05, 0.01], n_local // 3)[:, None]
    C = np.clip(np.vstack([rng.random((n_random, d)),
                           x_best + scales * rng.standard_normal((len(scales), d))]), 0, 1)

    def score(U):
        mean, var = gp_predict(gp, np.atleast_2d(U))
        return log_ei(mean, np.sqrt(var), best)

    def neg_score_and_grad(u, h=1e-6):  # forward differences, all d+1 points in one batch
        s = score(np.vstack([u, u + h * np.eye(d)]))
        return -s[0], -(s[1:] - s[0]) / h

    s = score(C)
    order = np.argsort(-s)
    polished = []
    for x0 in C[order[:n_polish]]:
        res = scipy_minimize(neg_score_and_grad, x0, jac=True, method="L-BFGS-B", bounds=[(0, 1)] * d)
        polished.append((-res.fun, res.x))
    polished += [(s[i], C[i]) for i in order[:50]]  # fall-backs if polished ones are taken
    polished.sort(key=lambda t: -t[0])
    return [u for _, u in polished]


# ----------------------------------------------------------------------------
# 4. ask / tell

MIN_DIST = 1e-3  # a point this close (unit cube) to a known one is a duplicate: it would teach ~nothing
WARP_OUTPUTS = True  # Yeo-Johnson warp in standardize(); off = plain standardisation


def standardize(values):
    """Outputs as the GP sees them: z = (y - mean)/std. Failed trials (nan/inf)
    count as the worst finite value; all-equal values give z = 0. With
    WARP_OUTPUTS, z is then Yeo-Johnson transformed (lambda by max likelihood,
    so skewed losses with a few huge values look Gaussian) and re-standardised."""
    y = np.asarray(values, dtype=float)
    ok = np.isfinite(y)
    y = np.where(ok, y, y[ok].max() if ok.any() else 0.0)
    if y.std() == 0:
        return np.zeros_like(y)
    z = (y - y.mean()) / y.std()
    if WARP_OUTPUTS:
        z = yeojohnson(z)[0]
        z = (z - z.mean()) / z.std()
    return z


def _is_new(u, seen):
    """True if unit-cube point u is at least MIN_DIST from every row of seen."""
    return len(seen) == 0 or np.linalg.norm(np.asarray(seen) - u, axis=1).min() >= MIN_DIST


@threadpool_limits.wrap(limits=1, user_api="blas")  # matrices are tiny: BLAS threads only thrash shared cores
def suggest_batch(space, observed, rng, k=1, pending=None, n_init=5, state=None):
    """k distinct new points. While fewer than n_init observations: uniform random.
    After: fit the GP once to standardize(y), then k times maximise EI, treating
    pending and already-chosen points as observed at the GP posterior mean (the
    "kriging believer"), which flattens EI around them. `state` (a dict) carries
    the GP hyper-parameters between calls to warm-start the fit."""
    rng = np.random.default_rng(rng)
    state = {} if state is None else state
    pending, d = list(pending or []), len(space)
    X = np.array([to_unit(p, space) for p, _ in observed]).reshape(-1, d)
    seen = list(X) + [to_unit(p, space) for p in pending]  # snapped unit-cube points
    use_gp = len(observed) >= max(n_init, 2)
    if use_gp:
        y = standardize([v for _, v in observed])
        gp = fit_gp(X, y, rng, theta0=state.get("theta"))
        state["theta"] = gp["theta"]
    chosen = []
    while len(chosen) < k:
        cands = []
        if use_gp:
            believed = gp
            if len(seen) > len(X):  # kriging believer: fake y = posterior mean
                Xp = np.array(seen[len(X):])
                believed = gp_condition(np.vstack([X, Xp]), np.r_[y, gp_predict(gp, Xp)[0]], gp["theta"])
            cands = maximize_ei(believed, y.min(), X[np.argmin(y)], rng)
        # take the best candidate that is not a duplicate; random ones as a last resort
        for u in cands + list(rng.random((1000, d))):
            p = from_unit(u, space)
            if _is_new(to_unit(p, space), seen):
                break
        chosen.append(p)
        seen.append(to_unit(p, space))
    return chosen


def suggest(space, observed, rng, pending=None, n_init=5, state=None):
    """One new point to evaluate given observed [(params, value)] (see suggest_batch)."""
    return suggest_batch(space, observed, rng, 1, pending, n_init, state)[0]


def minimize(objective, space, n_init=5, n_iter=20, seed=0, pending=None):
    """Minimise objective(params) -> float with n_init random then n_iter GP-EI
    evaluations. Returns the history [(params, value)] in evaluation order."""
    rng, state, history = np.random.default_rng(seed), {}, []
    for _ in range(n_init + n_iter):
        params = suggest(space, history, rng, pending, n_init, state)
        history.append((params, float(objective(params))))
    return history


# ----------------------------------------------------------------------------
# 5. benchmark on standard test functions (not a test: python sweep.py --benchmark branin)

def branin(p):
    """a (x2 - b x1^2 + c x1 - r)^2 + s (1 - t) cos x1 + s, on [-5,10] x [0,15]."""
    x1, x2 = p["x1"], p["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


HARTMANN_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                       [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
HARTMANN_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886],
                              [2329, 4135, 8307, 3736, 1004, 9991],
                              [2348, 1451, 3522, 2883, 3047, 6650],
                              [4047, 8828, 8732, 5743, 1091, 381]])
HARTMANN_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(p):
    """-sum_i alpha_i exp(-sum_j A_ij (x_j - P_ij)^2), on [0,1]^6."""
    x = np.array([p[f"x{j}"] for j in range(6)])
    return float(-HARTMANN_ALPHA @ np.exp(-(HARTMANN_A * (x - HARTMANN_P) ** 2).sum(1)))


BENCHMARKS = {  # name -> (function, space, global minimum)
    "branin": (branin, {"x1": ("real", -5.0, 10.0), "x2": ("real", 0.0, 15.0)}, 0.397887),
    "hartmann6": (hartmann6, {f"x{j}": ("real", 0.0, 1.0) for j in range(6)}, -3.32237),
}


def random_search(objective, space, budget, seed):
    """Baseline: budget uniform random points."""
    rng = np.random.default_rng(seed)
    return [(p, objective(p)) for p in (from_unit(rng.random(len(space)), space) for _ in range(budget))]


def run_benchmark(name, repeats=20, budget=25, n_init=5):
    """Print median [q1, q3] of the final simple regret (best found - global min)."""
    f, space, f_min = BENCHMARKS[name]
    regrets = {"gp-ei": [], "random": []}
    seconds = 0.0
    for seed in range(repeats):
        t0 = time.perf_counter()
        hist = minimize(f, space, n_init=n_init, n_iter=budget - n_init, seed=seed)
        seconds += time.perf_counter() - t0
        regrets["gp-ei"].append(min(v for _, v in hist) - f_min)
        regrets["random"].append(min(v for _, v in random_search(f, space, budget, 10**6 + seed)) - f_min)
    print(f"{name}: budget {budget}, {repeats} repeats; simple regret median [q1, q3]")
    for method, r in regrets.items():
        q1, med, q3 = np.percentile(r, [25, 50, 75])
        print(f"  {method:7s} {med:.4g} [{q1:.4g}, {q3:.4g}]")
    print(f"  seconds per GP suggestion: {seconds / (repeats * (budget - n_init)):.3f}")
    return regrets

