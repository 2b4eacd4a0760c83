"""The notebook the run-view tests run (server API and browser): a loop, a condition on a parameter,
and a step that fails in a function of its own cell, so the user's frames are two."""

RUN_VIEW_CELLS: list[tuple[str, list[str]]] = [
    ("seeds = [1, 2, 3]\nfloor = 1.0", ["pipeline-parameters"]),
    ("x = 1.0", ["step:load_data"]),
    ("score = x * seed", ["step:train", "foreach:seed:seeds"]),
    ("best = max(score)", ["step:pick"]),
    ("print('deploying', best)", ["step:deploy", "when:best:>=:floor"]),
    ("def check(value):\n    raise ValueError(f'too good: {value}')\n\ncheck(best)", ["step:audit"]),
]
