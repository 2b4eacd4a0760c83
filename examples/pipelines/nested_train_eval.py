"""A team's train-and-evaluate pipeline, reused by an orchestrator over several data sets."""

from kale_like import pipeline, step


@step
def load(name: str) -> list:
    sizes = {"small": 10, "medium": 40, "large": 90}
    return list(range(sizes[name]))


@step
def fit(rows: list) -> float:
    return sum(rows) / len(rows)


@step
def score(mean: float, threshold: float) -> float:
    return round(mean / (mean + threshold), 4)


@step
def summarize(scores: list) -> float:
    print("scores:", scores)
    return max(scores)


@pipeline(name="train-and-eval")
def train_and_eval(dataset: str = "small", threshold: float = 10.0) -> float:
    rows = load(dataset)
    mean = fit(rows)
    result = score(mean, threshold)
    return result


@pipeline(name="orchestrator", experiment="demo")
def orchestrator(datasets: list = ["small", "medium", "large"], threshold: float = 10.0):
    scores = []
    for dataset in datasets:
        scores.append(train_and_eval(dataset=dataset, threshold=threshold))
    summarize(scores)


if __name__ == "__main__":
    orchestrator()
