"""Make kfp's YAML header comment deterministic.

kfp writes a comment block listing the pipeline's inputs with their defaults; a dict default is
printed from a protobuf map, whose key order changes from process to process, so the same pipeline
compiled twice differs in that comment line. The YAML body is sorted and unaffected. Both the
kale_like writer and the generated DSL module's `__main__` apply this same function (the module
embeds its source), so they write identical bytes.
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
            lines[index] = head + marker + str(ordered(parsed)) + "]"
    return "\n".join(lines)
