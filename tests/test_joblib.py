"""The joblib backend as scikit-learn uses it: ``GridSearchCV(n_jobs=-1)`` and
``joblib.Parallel`` under ``parallel_config(backend="jupyter_futures")``, on every engine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import joblib
import numpy as np
import pytest
from engines import ENGINES, start_engine
from on_dask.dask_cluster import dask_cluster  # noqa: F401 - the Dask fixture
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.svm import SVC

import jupyter_futures as jf
import jupyter_futures.joblib as jf_joblib
from jupyter_futures.current import current_client_or_none

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    name: str = request.param
    start_engine(name, request)
    yield name
    jf.shutdown()


class Payload:
    """A large argument that counts how often this process pickles it."""

    pickled = 0

    def __init__(self, n: int) -> None:
        self.data = np.ones(n)
        self.nbytes = self.data.nbytes

    def __getstate__(self) -> dict[str, Any]:
        type(self).pickled += 1
        return self.__dict__


def weight(p: Payload, i: int) -> float:
    return float(p.data[:10].sum()) + i


def fail_on(i: int, bad: int) -> int:
    if i == bad:
        raise ValueError(f"bad item {i}")
    return i


def worker_pid(_: int) -> int:
    return os.getpid()


def nested_sum(n: int) -> int:
    return sum(joblib.Parallel(n_jobs=2)(joblib.delayed(pow)(i, 2) for i in range(n)))


def test_grid_search_matches_n_jobs_1(engine: str) -> None:
    X, y = make_classification(n_samples=200, n_features=8, random_state=0)
    grid = {"C": [0.1, 1.0, 10.0], "gamma": ["scale", 0.1]}
    expected = GridSearchCV(SVC(), grid, cv=3, n_jobs=1).fit(X, y)
    with joblib.parallel_config(backend="jupyter_futures"):
        got = GridSearchCV(SVC(), grid, cv=3, n_jobs=-1).fit(X, y)
        scores = cross_val_score(LogisticRegression(max_iter=200), X, y, cv=4, n_jobs=-1)
    np.testing.assert_array_equal(got.cv_results_["mean_test_score"], expected.cv_results_["mean_test_score"])
    assert got.best_params_ == expected.best_params_
    np.testing.assert_array_equal(scores, cross_val_score(LogisticRegression(max_iter=200), X, y, cv=4))


def test_parallel_runs_on_the_cluster_in_order(engine: str) -> None:
    with joblib.parallel_config(backend="jupyter_futures"):
        assert joblib.Parallel(n_jobs=-1)(joblib.delayed(pow)(i, 2) for i in range(50)) == [
            i * i for i in range(50)
        ]
        generated = joblib.Parallel(n_jobs=2, return_as="generator")(
            joblib.delayed(abs)(-i) for i in range(5)
        )
        assert list(generated) == [0, 1, 2, 3, 4]
        pids = set(joblib.Parallel(n_jobs=2, batch_size=1)(joblib.delayed(worker_pid)(i) for i in range(8)))
    if engine == "local":
        assert os.getpid() not in pids, "the calls ran in worker processes"
    elif engine == "threads":
        assert pids == {os.getpid()}


def test_an_error_stops_the_call_with_its_own_type(engine: str) -> None:
    with joblib.parallel_config(backend="jupyter_futures"), pytest.raises(ValueError, match="bad item 7"):
        joblib.Parallel(n_jobs=2, batch_size=1)(joblib.delayed(fail_on)(i, 7) for i in range(20))
    with joblib.parallel_config(backend="jupyter_futures"):  # the backend works on after it
        assert joblib.Parallel(n_jobs=2)(joblib.delayed(fail_on)(i, -1) for i in range(3)) == [0, 1, 2]


def test_a_large_argument_goes_through_the_store_once_per_call(engine: str) -> None:
    payload = Payload(2**17)  # 1 MiB
    Payload.pickled = 0
    with joblib.parallel_config(backend="jupyter_futures"):
        out = joblib.Parallel(n_jobs=2, batch_size=1)(joblib.delayed(weight)(payload, i) for i in range(20))
    assert out == [10.0 + i for i in range(20)]
    assert Payload.pickled <= 1, f"pickled {Payload.pickled} times for 20 tasks"
    small = joblib.Parallel(n_jobs=2, backend="jupyter_futures")(
        joblib.delayed(len)([1] * 3) for _ in range(4)
    )
    assert small == [3] * 4


def test_options_and_nested_parallel_calls() -> None:
    jf.init(2)
    try:
        config = joblib.parallel_config(backend="jupyter_futures", min_cpu=64)
        with config, pytest.raises(jf.UnsatisfiableRequirementError):
            joblib.Parallel(n_jobs=2)(joblib.delayed(pow)(2, 2) for _ in range(2))
        with joblib.parallel_config(backend="jupyter_futures"):  # two workers, each waiting on more calls
            nested = joblib.Parallel(n_jobs=2, batch_size=1)(joblib.delayed(nested_sum)(n) for n in (3, 4, 5))
        assert nested == [5, 14, 30]
    finally:
        jf.shutdown()
    with pytest.raises(TypeError, match="unknown submit option"):
        jf_joblib.JupyterFuturesBackend(retries=2)


def test_with_no_cluster_the_first_call_starts_one() -> None:
    assert current_client_or_none() is None
    with joblib.parallel_config(backend="jupyter_futures"):
        assert joblib.Parallel(n_jobs=-1)(joblib.delayed(abs)(-i) for i in range(4)) == [0, 1, 2, 3]
    client = jf.get_client()
    assert isinstance(client, jf.Client) and not client.closed
    jf.shutdown()
