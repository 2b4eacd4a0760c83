"""Write a kfp pipeline's YAML: the same in kale_like and in the DSL module it writes beside it.

kfp's writer (`Compiler.compile` -> `pipeline_spec_builder.write_pipeline_spec_to_file`, 2.17)
writes its comments (`extract_comments_from_pipeline_spec`), then `yaml.dump_all` of
`json_format.MessageToDict` of the pipeline's spec and, when it has any, of its platform spec, with
`sort_keys=True` and PyYAML's default `Dumper`, whose emitter is pure Python: 0.64 s of a 150-step
pipeline's 1 MB. Where PyYAML has libyaml, `_kl_yaml` sends the same documents through the same
representer into libyaml's emitter (`CDumper`): 0.08 s. Documents and comments are kfp's; libyaml
folds long quoted strings at other places than the Python emitter, so the bytes differ from
`Compiler.compile`'s (tests/test_yaml_writer.py compares the documents on every example). Without
libyaml, `Compiler.compile` writes the file.

kfp's comment block lists the pipeline's inputs with their defaults; a dict default is printed from
a protobuf map, whose key order changes from process to process: `_kl_stable_header` orders it, so
the same pipeline compiled twice gives the same bytes (the YAML body is sorted already). kfp writes
a text default raw between single quotes, so a line break in it ended the comment and made the file
unreadable YAML: `_kl_comment_header` writes the block again with each text default (and the name)
as Python's repr writes it (the only bytes that differ from kfp's own, and only for such values).

The generated DSL module embeds the part below (`dsl_codegen.embedded_source`), so that
`python NAME_kfp.py` writes the bytes kale_like wrote.
"""

# --- embedded below: keep self-contained ---


def _kl_stable_header(text):
    import ast

    def ordered(value):
        if isinstance(value, dict):
            return {key: ordered(value[key]) for key in sorted(value, key=str)}
        if isinstance(value, list):
            return [ordered(item) for item in value]
        return value

    lines = text.split("\n")
    marker = " [Default: "
    for index, line in enumerate(lines):
        if not line.startswith("#"):
            break
        if marker in line and line.endswith("]"):
            head, _, value = line.partition(marker)
            try:
                parsed = ast.literal_eval(value[:-1])
            except (ValueError, SyntaxError):
                continue
            if isinstance(parsed, (dict, list)):  # (a text stays as written: str() would drop its quotes and escapes)
                lines[index] = head + marker + str(ordered(parsed)) + "]"
    return "\n".join(lines)


def _kl_libyaml():
    """Whether PyYAML has libyaml's emitter here."""
    import yaml

    return bool(getattr(yaml, "__with_libyaml__", False)) and hasattr(yaml, "CDumper")


def _kl_yaml_text(pipeline, scratch_path, documents_ready=None):
    """`pipeline`'s YAML and the documents it holds. The comments and documents are those
    `kfp.compiler.Compiler().compile(pipeline, path)` writes; where PyYAML has libyaml they go
    through its emitter (~8x faster for a large pipeline, long strings folded elsewhere), else
    kfp's compiler writes them (to `scratch_path`). `documents_ready(documents)` is called before
    the YAML is written (kale_like checks a large pipeline meanwhile)."""
    import yaml
    from google.protobuf import json_format
    from kfp.compiler import compiler, pipeline_spec_builder

    documents = [json_format.MessageToDict(pipeline.pipeline_spec)]
    if pipeline.platform_spec.platforms:
        documents.append(json_format.MessageToDict(pipeline.platform_spec))
    if documents_ready is not None:
        documents_ready(documents)
    header = pipeline_spec_builder.extract_comments_from_pipeline_spec(documents[0], pipeline.description)
    if _kl_libyaml():
        text = header + yaml.dump_all(documents, Dumper=yaml.CDumper, sort_keys=True)
    else:
        compiler.Compiler().compile(pipeline, package_path=scratch_path)
        with open(scratch_path, encoding="utf-8", newline="") as stream:  # (a \r in kfp's header stays one)
            text = stream.read()
    if text.startswith(header):  # kfp's header, with the line breaks of values escaped: every line a comment
        text = _kl_comment_header(documents[0], pipeline.description) + text[len(header):]
    return _kl_stable_header(text), documents


def _kl_comment_header(spec, description):
    """kfp's comment block for `spec`, each text value written as Python's repr writes it.

    kfp writes a text default as `'` + value + `'`, and the pipeline's name as it is: a line break in
    either (a newline, a carriage return, or another break YAML knows: NEL, U+2028, U+2029) would end
    the comment, and the rest of the value would be read as YAML. repr escapes each of them."""
    import copy

    from kfp.compiler import pipeline_spec_builder

    spec = copy.deepcopy(spec)
    info = spec.get("pipelineInfo", {})
    if isinstance(info.get("name"), str):
        info["name"] = repr(info["name"] + '"')[1:-2]
    for body in spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {}).values():
        value = body.get("defaultValue")
        if isinstance(value, str):  # kfp puts it between single quotes: give it what repr writes between them
            body["defaultValue"] = repr(value + '"')[1:-2]  # (a `"` inside makes repr choose single quotes)
    return pipeline_spec_builder.extract_comments_from_pipeline_spec(spec, description)


def _kl_yaml(pipeline, path):
    """Write `pipeline`'s YAML to `path` (`_kl_yaml_text`)."""
    text, _ = _kl_yaml_text(pipeline, path)
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(text)
