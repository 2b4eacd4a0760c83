"""Evaluate one model on every region's data in parallel: a loop over a dict's items."""

from kale_like import pipeline, step

REGIONS = {"eu-west": 0.31, "us-east": 0.42, "ap-south": 0.27}


@step
def train(n_trees: int) -> dict:
    return {"n_trees": n_trees, "bias": 0.05}


@step
def evaluate(model: dict, region: str, drift: float) -> float:
    score = round(1.0 - drift * model["bias"] * 10, 4)
    print(f"{region}: {score}")
    return score


@step
def report(scores: list) -> float:
    worst = min(scores)
    print("worst region score:", worst)
    return worst


@pipeline(name="cross-region-eval", experiment="demo")
def cross_region(n_trees: int = 50, regions: dict = REGIONS):
    model = train(n_trees)
    scores = []
    for region, drift in regions.items():
        scores.append(evaluate(model, region, drift))
    report(scores)


if __name__ == "__main__":
    cross_region()
