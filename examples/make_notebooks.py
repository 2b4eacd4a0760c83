"""Generate the example notebooks in examples/notebooks/.

Each notebook is annotated with Kale-style cell tags (``imports``,
``functions``, ``pipeline-parameters``, ``step:NAME``, ``prev:NAME``,
``skip``, ``limit:...``, ``cache:disabled``, ``label:...``,
``annotation:...``, ``pipeline-metrics``) and carries
``metadata.kubeflow_notebook``.  The notebooks use only numpy, pandas and
scikit-learn, generate or load their data in-process with fixed seeds, and
run top-to-bottom in a few seconds.

Usage::

    python examples/make_notebooks.py           # (re)write the .ipynb files
    python examples/make_notebooks.py --check   # also execute them with nbclient
                                                # and print the metric values

The output is deterministic: cell ids are derived from the notebook name and
the cell position, and no outputs are stored.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "notebooks"

KERNELSPEC = {
    "display_name": "Python 3 (ipykernel)",
    "language": "python",
    "name": "python3",
}
LANGUAGE_INFO = {
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
}


def md(text: str):
    return ("markdown", textwrap.dedent(text).strip("\n"), [])


def code(text: str, *tags: str):
    return ("code", textwrap.dedent(text).strip("\n"), list(tags))


def build(stem: str, kubeflow: dict, cells: list) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = dict(LANGUAGE_INFO)
    nb.metadata["kubeflow_notebook"] = dict(kubeflow)
    for i, (kind, source, tags) in enumerate(cells):
        if kind == "markdown":
            cell = new_markdown_cell(source)
        else:
            cell = new_code_cell(source)
        cell.id = f"{stem.replace('_', '-')}-{i:02d}"
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


# ---------------------------------------------------------------------------
# 1. wine_quality.ipynb: load -> prepare -> train -> evaluate (pandas + sklearn)
# ---------------------------------------------------------------------------

WINE = (
    "wine_quality",
    {
        "pipeline_name": "wine-quality",
        "experiment_name": "wine-quality-experiments",
        "pipeline_description": (
            "Classify wines into their three cultivars from 13 chemical "
            "measurements with a random forest (scikit-learn's bundled UCI "
            "wine recognition data)."
        ),
    },
    [
        md(
            """
            # Wine classification pipeline

            This notebook trains a random forest that predicts which of three
            cultivars a wine comes from, using the chemical analysis in the UCI
            *wine recognition* data set that ships with scikit-learn (178 wines,
            13 numeric features, so nothing is downloaded).

            The cells are annotated for pipeline conversion:

            * `imports` and `functions` cells are prepended to every step;
            * the `pipeline-parameters` cell becomes the pipeline's parameters;
            * `step:` / `prev:` cells define the steps and their dependencies:
              `load_data -> prepare_data -> train_model -> evaluate`;
            * the `skip` cell is exploration only and is left out of the pipeline;
            * the final `pipeline-metrics` cell exports `accuracy`, `f1`, ... as
              pipeline metrics.
            """
        ),
        code(
            """
            import numpy as np
            import pandas as pd
            from sklearn.datasets import load_wine
            from sklearn.ensemble import RandomForestClassifier
            from sklearn.metrics import accuracy_score, f1_score
            from sklearn.model_selection import train_test_split
            """,
            "imports",
        ),
        md(
            """
            ## Parameters

            Every assignment here becomes a pipeline parameter that can be
            overridden when the pipeline is run.
            """
        ),
        code(
            """
            test_size = 0.3
            n_estimators = 25
            max_depth = 3
            seed = 42
            f1_average = "macro"
            scale_features = True
            """,
            "pipeline-parameters",
        ),
        code(
            """
            def add_ratio_features(frame):
                \"\"\"Return a copy of `frame` with two chemically motivated ratio features.\"\"\"
                out = frame.copy()
                out["flavanoid_ratio"] = out["flavanoids"] / out["total_phenols"]
                out["color_per_hue"] = out["color_intensity"] / out["hue"]
                return out


            def standardize(train, test):
                \"\"\"Scale both arrays with the mean and std of `train`.\"\"\"
                mean = train.mean(axis=0)
                std = train.std(axis=0)
                std[std == 0] = 1.0
                return (train - mean) / std, (test - mean) / std
            """,
            "functions",
        ),
        md(
            """
            ## Load the data

            The data set is bundled with scikit-learn; we keep it as a pandas
            DataFrame and give the one awkward column name a simpler spelling.
            """
        ),
        code(
            """
            raw = load_wine(as_frame=True)
            wine_df = raw.frame.rename(columns={"od280/od315_of_diluted_wines": "od280_od315"})
            print(f"loaded {len(wine_df)} wines with {wine_df.shape[1] - 1} features")
            """,
            "step:load_data",
            "packages:pandas",
        ),
        md("A quick look at the data (exploration only, skipped in the pipeline):"),
        code(
            """
            print(wine_df["target"].value_counts().sort_index())
            wine_df.head()
            """,
            "skip",
        ),
        md(
            """
            ## Prepare features

            Add two ratio features, then split into stratified train and test
            sets. The second cell has no tag: it continues the `prepare_data`
            step.
            """
        ),
        code(
            """
            features_df = add_ratio_features(wine_df.drop(columns="target"))
            labels = wine_df["target"].to_numpy()
            feature_names = list(features_df.columns)
            """,
            "step:prepare_data",
            "prev:load_data",
        ),
        code(
            """
            X_train, X_test, y_train, y_test = train_test_split(
                features_df.to_numpy(),
                labels,
                test_size=test_size,
                random_state=seed,
                stratify=labels,
            )
            if scale_features:
                X_train, X_test = standardize(X_train, X_test)
            print(f"train: {X_train.shape}, test: {X_test.shape}")
            """
        ),
        md("## Train a random forest"),
        code(
            """
            model = RandomForestClassifier(
                n_estimators=n_estimators,
                max_depth=max_depth,
                random_state=seed,
                n_jobs=1,
            )
            model.fit(X_train, y_train)
            train_accuracy = round(float(model.score(X_train, y_train)), 4)
            importances = pd.Series(model.feature_importances_, index=feature_names)
            print(importances.sort_values(ascending=False).head(5))
            """,
            "step:train_model",
            "prev:prepare_data",
            "label:stage:training",
            "annotation:owner:ml-team",
        ),
        md(
            """
            ## Evaluate on the held-out set
            """
        ),
        code(
            """
            y_pred = model.predict(X_test)
            accuracy = round(float(accuracy_score(y_test, y_pred)), 4)
            f1 = round(float(f1_score(y_test, y_pred, average=f1_average)), 4)
            """,
            "step:evaluate",
            "prev:train_model",
        ),
        code(
            """
            n_errors = int((y_pred != y_test).sum())
            confusion = pd.crosstab(
                pd.Series(y_test, name="actual"), pd.Series(y_pred, name="predicted")
            )
            print(confusion)
            print(f"accuracy={accuracy} f1={f1} errors={n_errors}/{len(y_test)}")
            """
        ),
        md("## Metrics"),
        code(
            """
            print(accuracy)
            print(f1)
            print(train_accuracy)
            print(n_errors)
            """,
            "pipeline-metrics",
        ),
    ],
)


# ---------------------------------------------------------------------------
# 2. parallel_branches.ipynb: a diamond load -> {logreg, forest} -> compare
# ---------------------------------------------------------------------------

PARALLEL = (
    "parallel_branches",
    {
        "pipeline_name": "parallel-branches",
        "experiment_name": "model-comparison",
        "pipeline_description": (
            "Train a logistic regression and a random forest in parallel on the "
            "same synthetic data, then keep the more accurate one."
        ),
    },
    [
        md(
            """
            # Two models in parallel

            A diamond-shaped pipeline:

            ```
                     load_data
                    /         \\
            train_logreg   train_forest
                    \\         /
                      compare
            ```

            Both training steps depend only on `load_data` and never read each
            other's variables, so they can run at the same time. `compare`
            depends on both and picks the model with the better test accuracy.
            The data is synthetic (`make_classification` with a fixed seed).
            """
        ),
        code(
            """
            import numpy as np
            from sklearn.datasets import make_classification
            from sklearn.ensemble import RandomForestClassifier
            from sklearn.linear_model import LogisticRegression
            from sklearn.metrics import accuracy_score, f1_score
            from sklearn.model_selection import train_test_split
            """,
            "imports",
        ),
        code(
            """
            n_samples = 600
            n_features = 12
            test_size = 0.3
            seed = 0
            C = 0.5
            n_estimators = 60
            max_depth = 6
            """,
            "pipeline-parameters",
        ),
        code(
            """
            def score_model(model, X, y):
                \"\"\"Return (accuracy, macro F1) of `model` on X, y, rounded to 4 places.\"\"\"
                pred = model.predict(X)
                acc = round(float(accuracy_score(y, pred)), 4)
                f1_macro = round(float(f1_score(y, pred, average="macro")), 4)
                return acc, f1_macro
            """,
            "functions",
        ),
        md("## Load (generate) the data"),
        code(
            """
            X, y = make_classification(
                n_samples=n_samples,
                n_features=n_features,
                n_informative=6,
                n_redundant=2,
                n_clusters_per_class=2,
                flip_y=0.03,
                class_sep=0.8,
                random_state=seed,
            )
            X_train, X_test, y_train, y_test = train_test_split(
                X, y, test_size=test_size, random_state=seed, stratify=y
            )
            print(f"train: {X_train.shape}, test: {X_test.shape}")
            """,
            "step:load_data",
        ),
        code(
            """
            print("class balance (train):", np.bincount(y_train))
            """,
            "skip",
        ),
        md("## Branch 1: logistic regression"),
        code(
            """
            logreg_model = LogisticRegression(C=C, max_iter=1000)
            logreg_model.fit(X_train, y_train)
            logreg_accuracy, logreg_f1 = score_model(logreg_model, X_test, y_test)
            print(f"logistic regression: accuracy={logreg_accuracy} f1={logreg_f1}")
            """,
            "step:train_logreg",
            "prev:load_data",
        ),
        md("## Branch 2: random forest"),
        code(
            """
            forest_model = RandomForestClassifier(
                n_estimators=n_estimators,
                max_depth=max_depth,
                random_state=seed,
                n_jobs=1,
            )
            forest_model.fit(X_train, y_train)
            """,
            "step:train_forest",
            "prev:load_data",
        ),
        code(
            """
            forest_accuracy, forest_f1 = score_model(forest_model, X_test, y_test)
            print(f"random forest: accuracy={forest_accuracy} f1={forest_f1}")
            """
        ),
        md(
            """
            ## Compare

            Uses only what the two branches produced. On a tie the logistic
            regression (the simpler model) wins.
            """
        ),
        code(
            """
            candidates = {
                "logistic_regression": (logreg_accuracy, logreg_f1, logreg_model),
                "random_forest": (forest_accuracy, forest_f1, forest_model),
            }
            best_name = max(candidates, key=lambda name: candidates[name][0])
            best_accuracy, best_f1, best_model = candidates[best_name]
            accuracy_gap = round(abs(forest_accuracy - logreg_accuracy), 4)
            forest_wins = int(best_name == "random_forest")
            print(f"best model: {best_name} ({type(best_model).__name__}), "
                  f"accuracy={best_accuracy}, gap={accuracy_gap}")
            """,
            "step:compare",
            "prev:train_logreg",
            "prev:train_forest",
        ),
        md("## Metrics"),
        code(
            """
            print(logreg_accuracy)
            print(forest_accuracy)
            print(best_accuracy)
            print(best_f1)
            print(accuracy_gap)
            print(forest_wins)
            """,
            "pipeline-metrics",
        ),
    ],
)


# ---------------------------------------------------------------------------
# 3. numpy_stats.ipynb: pure numpy, typed parameters, resource limits, caching
# ---------------------------------------------------------------------------

NUMPY_STATS = (
    "numpy_stats",
    {
        "pipeline_name": "numpy-sensor-stats",
        "experiment_name": "sensor-statistics",
        "pipeline_description": (
            "Simulate three sensors with numpy, drop outliers, and summarise "
            "the cleaned readings into weighted statistics."
        ),
    },
    [
        md(
            """
            # Sensor statistics with plain numpy

            A linear pipeline `generate_data -> clean_data -> compute_stats -> score`
            that passes numpy arrays, a dict of arrays and a nested dict from step
            to step. Parameters cover int, float, bool, list and dict values.

            * `generate_data` and `clean_data` carry resource limits
              (`limit:cpu:500m`, `limit:memory:1Gi`);
            * `compute_stats` and `score` disable caching (`cache:disabled`).
            """
        ),
        code("import numpy as np", "imports"),
        code(
            """
            n_samples = 1000
            seed = 7
            noise_scale = 0.5
            outlier_threshold = 4.0
            normalize = True
            quantiles = [0.05, 0.5, 0.95]
            weights = {"temperature": 0.5, "pressure": 0.3, "humidity": 0.2}
            """,
            "pipeline-parameters",
        ),
        code(
            """
            def zscore(column):
                \"\"\"Standard score of a 1-D array.\"\"\"
                return (column - column.mean()) / column.std()
            """,
            "functions",
        ),
        md(
            """
            ## Generate readings

            Three smooth signals plus Gaussian noise; 1% of the temperature
            readings get a large spike so the cleaning step has work to do.
            """
        ),
        code(
            """
            rng = np.random.default_rng(seed)
            sensor_names = list(weights)
            t = np.linspace(0.0, 4.0 * np.pi, n_samples)
            readings = np.column_stack([
                20.0 + 5.0 * np.sin(t),
                1013.0 + 2.0 * np.cos(t),
                55.0 + 10.0 * np.sin(0.5 * t),
            ])
            readings = readings + rng.normal(0.0, noise_scale, size=readings.shape)
            """,
            "step:generate_data",
            "limit:cpu:500m",
            "limit:memory:1Gi",
        ),
        code(
            """
            spike_rows = rng.choice(n_samples, size=n_samples // 100, replace=False)
            readings[spike_rows, 0] += 30.0
            print(f"generated {readings.shape[0]} readings for {sensor_names}")
            """
        ),
        md("## Drop outliers (and optionally normalise each sensor by its median)"),
        code(
            """
            z = np.column_stack([zscore(readings[:, j]) for j in range(readings.shape[1])])
            keep = (np.abs(z) < outlier_threshold).all(axis=1)
            clean = readings[keep]
            n_outliers = int((~keep).sum())
            kept_fraction = round(float(keep.mean()), 4)
            if normalize:
                clean = clean / np.median(clean, axis=0)
            clean_by_sensor = {name: clean[:, j] for j, name in enumerate(sensor_names)}
            print(f"dropped {n_outliers} rows, kept {kept_fraction:.1%}")
            """,
            "step:clean_data",
            "prev:generate_data",
            "limit:cpu:500m",
        ),
        md("## Per-sensor statistics"),
        code(
            """
            column_stats = {}
            for name, values in clean_by_sensor.items():
                qs = np.quantile(values, quantiles)
                column_stats[name] = {
                    "mean": float(values.mean()),
                    "std": float(values.std()),
                    "quantiles": [float(q) for q in qs],
                    "spread": float(qs[-1] - qs[0]),
                }
            corr = np.corrcoef(np.vstack(list(clean_by_sensor.values())))
            max_abs_corr = round(float(np.abs(corr[np.triu_indices_from(corr, k=1)]).max()), 4)
            for name, stats in column_stats.items():
                print(name, {k: v for k, v in stats.items() if k != "quantiles"})
            """,
            "step:compute_stats",
            "prev:clean_data",
            "cache:disabled",
            "limit:memory:1Gi",
        ),
        md("## Weighted summary"),
        code(
            """
            weighted_spread = round(
                float(sum(weights[name] * column_stats[name]["spread"] for name in weights)), 6
            )
            weighted_std = round(
                float(sum(weights[name] * column_stats[name]["std"] for name in weights)), 6
            )
            print(f"weighted spread={weighted_spread} weighted std={weighted_std}")
            """,
            "step:score",
            "prev:compute_stats",
            "cache:disabled",
        ),
        md("## Metrics"),
        code(
            """
            print(n_outliers)
            print(kept_fraction)
            print(max_abs_corr)
            print(weighted_spread)
            print(weighted_std)
            """,
            "pipeline-metrics",
        ),
    ],
)

NOTEBOOKS = [WINE, PARALLEL, NUMPY_STATS]


def write_all() -> list[Path]:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, kubeflow, cells in NOTEBOOKS:
        nb = build(stem, kubeflow, cells)
        path = OUT_DIR / f"{stem}.ipynb"
        with open(path, "w", encoding="utf-8") as fh:
            nbformat.write(nb, fh)
        paths.append(path)
        print(f"wrote {path.relative_to(HERE.parent)}")
    return paths


def check(paths: list[Path]) -> int:
    """Execute each notebook top-to-bottom and print its metric values."""
    import time

    from nbclient import NotebookClient

    failures = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        try:
            NotebookClient(
                nb,
                timeout=120,
                kernel_name="python3",
                resources={"metadata": {"path": str(path.parent)}},
            ).execute()
        except Exception as exc:  # noqa: BLE001 - report and continue
            failures += 1
            print(f"FAILED {path.name}: {exc}")
            continue
        elapsed = time.perf_counter() - start
        metrics_cell = next(c for c in nb.cells if "pipeline-metrics" in c.metadata.get("tags", []))
        names = [
            line.strip()[len("print("):-1]
            for line in metrics_cell.source.splitlines()
            if line.strip()
        ]
        values = "".join(
            o.get("text", "") for o in metrics_cell.outputs if o.get("output_type") == "stream"
        ).split()
        print(f"ok {path.name} ({elapsed:.1f}s)")
        for name, value in zip(names, values):
            print(f"    {name} = {value}")
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="execute the notebooks with nbclient")
    args = parser.parse_args(argv)
    paths = write_all()
    if args.check:
        return 1 if check(paths) else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
