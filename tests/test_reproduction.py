"""The paper's qualitative synthetic finding, cheaply: the baseline learns the confounder (and is wrong
on the reversed validation set), masking the confounder away makes the model count crosses."""
import results
import train

QUICK = ["--n-train", "160", "--n-eval", "32", "--epochs", "2", "--seed", "0"]


def valid_auc(tmp_path, method):
    path = tmp_path / f"{method}.csv"
    assert train.cli(["--method", method, "--results", str(path), "--out", str(tmp_path / method), *QUICK]) == 0
    return float(results.read_rows(str(path), kind="final")[0]["valid_auc"])


def test_baseline_reads_the_confounder(tmp_path):
    assert valid_auc(tmp_path, "baseline") < 0.3


def test_masked_training_counts_the_crosses(tmp_path):
    assert valid_auc(tmp_path, "masked") > 0.7
