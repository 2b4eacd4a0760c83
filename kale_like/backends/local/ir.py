"""A compiled pipeline (KFP v2 IR YAML) as the local scheduler reads it."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

from kale_like.errors import KaleLikeError, SourceLocation


@dataclass(frozen=True)
class PipelineIR:
    """The pipeline spec document (and the platform document, when there is one)."""

    spec: dict
    platform: dict
    source: str

    @classmethod
    def from_text(cls, text: str, source: str = "<pipeline>") -> PipelineIR:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            documents = [d for d in yaml.load_all(text, Loader=loader) if d]
        except yaml.YAMLError as error:
            raise KaleLikeError(f"not valid YAML: {error}", SourceLocation(source)) from None
        if not documents or not isinstance(documents[0], dict) or "root" not in documents[0]:
            raise KaleLikeError("this YAML file is not a compiled KFP v2 pipeline (no 'root')",
                                SourceLocation(source), "compile one with `python -m kale_like SOURCE --kfp`")
        platform = next((d for d in documents[1:] if isinstance(d, dict) and "platforms" in d), {})
        return cls(documents[0], platform, source)

    @classmethod
    def from_file(cls, path: str | Path) -> PipelineIR:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise KaleLikeError(f"cannot read the file: {error}", SourceLocation(str(path))) from None
        return cls.from_text(text, str(path))

    @property
    def name(self) -> str:
        return self.spec.get("pipelineInfo", {}).get("name", "pipeline")

    def component(self, name: str) -> dict:
        return self.spec["root"] if name == "root" else self.spec["components"][name]

    def executor(self, label: str) -> dict:
        return self.spec["deploymentSpec"]["executors"][label]

    def parameter_defaults(self) -> dict:
        return input_defaults(self.spec["root"])

    def parameter_types(self) -> dict[str, str]:
        definitions = self.spec["root"].get("inputDefinitions", {}).get("parameters", {})
        return {name: d.get("parameterType", "") for name, d in definitions.items()}

    @staticmethod
    def upstream(task: dict) -> tuple[str, ...]:
        """Tasks this task waits for: declared dependencies and the producers of its inputs."""
        names = dict.fromkeys(task.get("dependentTasks", []))
        names.update(dict.fromkeys(PipelineIR.data_producers(task)))
        for spec in task.get("inputs", {}).get("parameters", {}).values():
            if "taskFinalStatus" in spec:
                names[spec["taskFinalStatus"]["producerTask"]] = None
        return tuple(names)

    @staticmethod
    def data_producers(task: dict) -> tuple[str, ...]:
        names = []
        inputs = task.get("inputs", {})
        for spec in inputs.get("parameters", {}).values():
            if "taskOutputParameter" in spec:
                names.append(spec["taskOutputParameter"]["producerTask"])
        for spec in inputs.get("artifacts", {}).values():
            if "taskOutputArtifact" in spec:
                names.append(spec["taskOutputArtifact"]["producerTask"])
        return tuple(dict.fromkeys(names))


def as_json(value):
    """A value as KFP's JSON carries it: integral numbers are ints (protobuf prints 3.0 as 3)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [as_json(item) for item in value]
    if isinstance(value, dict):
        return {key: as_json(item) for key, item in value.items()}
    return value


def input_defaults(component: dict) -> dict:
    """A component's parameter defaults, typed as declared (the IR stores every number as a float)."""
    definitions = component.get("inputDefinitions", {}).get("parameters", {})
    result = {}
    for name, definition in definitions.items():
        if "defaultValue" in definition:
            value = definition["defaultValue"]
            if definition.get("parameterType") != "NUMBER_DOUBLE":
                value = as_json(value)
            result[name] = value
    return result


def component_program(executor: dict) -> tuple[str, str]:
    """(program text, function name) of a KFP lightweight Python component's container."""
    container = executor.get("container", {})
    command = container.get("command", [])
    arguments = container.get("args", [])
    function = ""
    for index, word in enumerate(arguments):
        if word == "--function_to_execute" and index + 1 < len(arguments):
            function = arguments[index + 1]
    program = command[-1] if command else ""
    if not function or "def " not in program:
        image = container.get("image", "?")
        raise KaleLikeError(
            f"the step runs a container ({image}: {shlex.join(command[:3])} ...) that is not a "
            "lightweight Python component; local runs execute Python components only",
            None, "run it on a KFP cluster instead")
    return program, function
