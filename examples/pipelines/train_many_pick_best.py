"""Train one model per seed in parallel, pick the best, deploy it only if it is good enough.

Runs as plain Python (`python train_many_pick_best.py`) and compiles to KFP with
`python -m kale_like train_many_pick_best.py --kfp`.
"""

from kale_like import parallel, pipeline, step


@step(packages=["scikit-learn"])
def prepare(n_samples: int) -> dict:
    from sklearn.datasets import make_classification

    features, labels = make_classification(n_samples=n_samples, n_features=8, random_state=0)
    return {"features": features.tolist(), "labels": labels.tolist()}


@step(cpu="1", memory="1Gi")
def train(data: dict, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        data["features"], data["labels"], test_size=0.3, random_state=seed
    )
    model = LogisticRegression(max_iter=200).fit(x_train, y_train)
    return round(float(model.score(x_test, y_test)), 4)


@step
def pick_best(scores: list) -> float:
    print("scores:", scores)
    return max(scores)


@step
def deploy(score: float) -> str:
    print(f"deploying the model with accuracy {score}")
    return "deployed"


@step
def alert(score: float) -> str:
    print(f"not deploying: accuracy {score} is below the threshold")
    return "alerted"


@pipeline(name="train-many-pick-best", experiment="demo")
def train_many(threshold: float = 0.8, seeds: list = [1, 2, 3, 4, 5], n_samples: int = 400):
    data = prepare(n_samples)
    scores = []
    for seed in parallel(seeds, parallelism=3):
        scores.append(train(data, seed))
    best = pick_best(scores)
    if best >= threshold:
        outcome = deploy(best)
    else:
        outcome = alert(best)
    return outcome


if __name__ == "__main__":
    print(train_many())
