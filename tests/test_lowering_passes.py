"""Unit tests of the lowering passes (kale_like/lowering/), each on tiny hand-built step graphs.

For each pass: a graph it must leave as it is, each shape it rewrites (the nodes it adds and changes,
as a backend reading the graph sees them), and, where it adds a step, what that step's code computes,
run as plain Python with its inputs bound. Each pass stands for something the KFP backend's driver
does otherwise than Python; the comment on each group names the kubeflow/pipelines source file and
what it does there.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import pytest

import kale_like.lowering as lowering
from kale_like.errors import SourceLocation
from kale_like.graph.model import Loop, Output, Parameter, Ref, Step, StepGraph
from kale_like.graph.types import JSON, list_of
from kale_like.graph.model import Test as IfTest  # (a name pytest would collect)
from kale_like.lowering import lower, lowering_warnings
from kale_like.lowering.branch_state import mark_chosen_branches
from kale_like.lowering.empty_loops import guard_empty_loops, unguarded_loops
from kale_like.lowering.exit_state import mark_the_end
from kale_like.lowering.loop_items import encode_untyped_loop_items
from kale_like.lowering.nested_collected import collected_arguments_handed_on, plain_nested_results
from kale_like.lowering.own_list import loops_keep_their_list
from kale_like.runtime.step_runtime import _kl_coerce
from tiny_graphs import (
    branch, call, collected, condition, const, generated, graph, item, loop, oneof, param, reads, run_code, step,
    sub, task, truth, without_code,
)

AT_LOOP = SourceLocation("tiny.py", line=7)
AT_IF = SourceLocation("tiny.py", line=12)
AT_CALL = SourceLocation("tiny.py", line=20)
AT_EXIT = SourceLocation("tiny.py", line=30)

# the seven passes under test, as PASSES names them (lower() may run others too)
SEVEN = (encode_untyped_loop_items, loops_keep_their_list, plain_nested_results, collected_arguments_handed_on,
         guard_empty_loops, mark_chosen_branches, mark_the_end)


def decoded(text: str, declared: str) -> Any:
    """A value as the step runtime gives it to a step input declared `declared` (e.g. `json:int`)."""
    return _kl_coerce(text, declared)


# --- encode_untyped_loop_items (lowering/loop_items.py) ---------------------------------------------
# backend/src/v2/driver/resolve.go, resolveInputs -> handleParamTypeValidationAndConversion: an input
# the loop's DAG declares STRING (kfp's type for the item of a list without element type) that holds
# another kind of value is replaced by metadata.PbValueToText(value): 1 arrives as "1", True as "true".


def test_encode_leaves_typed_and_literal_loops_alone():
    g = graph(
        loop("for-1", param("ns"), step("use", reads("n", item("for-1"), "int")), item_type="int"),
        loop("for-2", const([1, 2]), step("show", reads("v", item("for-2")))),  # kfp declares raw items' type
        step("plain", reads("ns", param("ns"), "list:int")),
        parameters=(Parameter("ns", "list:int", [1]),))
    assert encode_untyped_loop_items(g) == g


def test_encode_loops_over_the_json_texts_of_untyped_items():
    use = step("use", reads("x", item("for-1"), "int"), reads("raw", item("for-1")), reads("xs", param("xs"), "list"),
               reads("seed", task("prep")), makes=("y",))
    g = graph(step("prep", makes=("result",)), loop("for-1", param("xs"), use, location=AT_LOOP),
              parameters=(Parameter("xs", "list", [1]),))

    prep, encoder, looped = encode_untyped_loop_items(g).body

    assert prep == g.body[0]
    assert without_code(encoder) == generated("xs_items", reads("items", param("xs"), "list"),
                                              makes=(Output("items", "list:str"),), location=AT_LOOP)
    # only the inputs reading the item itself are declared json (with the type the step declared)
    decoding_use = replace(use, inputs=(reads("x", item("for-1"), "json:int"), reads("raw", item("for-1"), JSON))
                           + use.inputs[2:])
    assert looped == replace(g.body[1], items=task("xs_items", "items"), item_type=JSON, body=(decoding_use,))


def test_encoded_items_reach_the_step_as_the_python_values():
    g = graph(loop("for-1", param("xs"), step("use", reads("x", item("for-1")))))
    encoder = encode_untyped_loop_items(g).body[0]
    values = [1, True, "1", {"a": [1, None]}, None, 2.5]

    texts = run_code(encoder, items=values)["items"]

    assert all(isinstance(text, str) for text in texts)  # strings: the driver hands them on unchanged
    assert [decoded(text, JSON) for text in texts] == values
    assert [type(decoded(text, JSON)) for text in texts] == [type(v) for v in values]  # True stays a bool
    assert decoded(texts[0], "json:float") == 1.0 and type(decoded(texts[0], "json:float")) is float
    # in the filler iteration of a guarded loop around this one the list is a filler, not a list
    assert run_code(encoder, items=None)["items"] == []


def test_encoder_named_after_a_task_output_and_clear_of_taken_names():
    g = graph(step("make", makes=("rows",)), step("make_rows_items"),
              loop("for-1", task("make", "rows"), step("use", reads("r", item("for-1")))),
              loop("for-2", task("make", "rows"), step("use_2", reads("r", item("for-2")))))

    body = encode_untyped_loop_items(g).body

    assert [node.name for node in body if isinstance(node, Step)] == [
        "make", "make_rows_items", "make_rows_items_2", "make_rows_items_3"]
    assert [node.items for node in body if isinstance(node, Loop)] == [
        task("make_rows_items_2", "items"), task("make_rows_items_3", "items")]


def test_encode_nested_loops_over_an_untyped_item():
    # for row in rows: for v in row: use(v, row)
    use = step("use", reads("v", item("for-2")), reads("row", item("for-1"), "list"))
    g = graph(loop("for-1", param("rows"), loop("for-2", item("for-1"), use)))

    rows_items, outer = encode_untyped_loop_items(g).body

    assert rows_items.name == "rows_items" and outer.items == task("rows_items", "items")
    row_items, inner = outer.body
    # the inner loop's encoder reads the outer item, so it decodes it too
    assert without_code(row_items) == generated("for_1_items", reads("items", item("for-1"), "json:list"),
                                                makes=(Output("items", "list:str"),))
    assert inner == replace(g.body[0].body[0], items=task("for_1_items", "items"), item_type=JSON, body=(
        replace(use, inputs=(reads("v", item("for-2"), JSON), reads("row", item("for-1"), "json:list"))),))

    # what the steps of one inner iteration receive: the Python values
    outer_texts = run_code(rows_items, items=[[1, "a"], [True]])["items"]
    inner_texts = run_code(row_items, items=decoded(outer_texts[0], "json:list"))["items"]
    assert [decoded(text, JSON) for text in inner_texts] == [1, "a"]
    assert decoded(outer_texts[1], "json:list") == [True]


def test_encode_is_idempotent():
    g = graph(loop("for-1", param("rows"), loop("for-2", item("for-1"), step("use", reads("v", item("for-2"))))))
    once = encode_untyped_loop_items(g)
    assert once != g
    assert encode_untyped_loop_items(once) == once


def _records_loop(listing: Step | None = None) -> StepGraph:
    """for i, x in enumerate(xs): use(i, x) -- a loop over records whose fields' types are unknown."""
    use = step("use", reads("i", item("for-1", "field_i"), "int"), reads("x", item("for-1", "field_x"), "str"))
    records = replace(loop("for-1", task("i_x_items", "items"), use, item_type="dict"),
                      fields=(Output("field_i"), Output("field_x")))
    listing = listing or step("i_x_items", makes=(Output("items", "list"),))
    return graph(listing, records)


def test_encode_each_field_of_records_of_unknown_type():
    # the driver selects a field of a struct item and hands it over as text, like a whole untyped item
    producer = step("i_x_items", makes=(Output("items", "list"),))  # a user's step: its list is left as it is
    listing, encoder, records = encode_untyped_loop_items(_records_loop(producer)).body
    assert listing == producer and encoder.generated and records.items == task(encoder.name, "items")
    assert [(f.name, f.type) for f in records.fields] == [("field_i", JSON), ("field_x", JSON)]
    assert [value.type for value in records.body[0].inputs] == ["json:int", "json:str"]
    (text,) = run_code(encoder, items=[{"field_i": 0, "field_x": "a"}])["items"]
    assert {name: decoded(value, JSON) for name, value in text.items()} == {"field_i": 0, "field_x": "a"}


def test_encoding_joins_the_step_of_the_users_expression_that_lists_the_items():
    # `enumerate(xs)` listed by the step lowered from the user's expression, read by nothing else: one task
    listing = replace(step("i_x_items", reads("xs", param("xs"), "list"), makes=(Output("items", "list"),),
                           code="items = [{'field_i': i, 'field_x': x} for i, x in enumerate(xs)]\n",
                           generated=True), from_expression=True)
    fused, records = encode_untyped_loop_items(_records_loop(listing)).body
    assert fused.name == "i_x_items" and records.items == task("i_x_items", "items")
    (first, second) = run_code(fused, xs=["a", "b"])["items"]
    assert (decoded(second["field_i"], "json:int"), decoded(second["field_x"], "json:str")) == (1, "b")
    also_read = graph(*_records_loop(listing).body, step("other", reads("all", task("i_x_items", "items"), "list")))
    assert len(encode_untyped_loop_items(also_read).body) == 4  # read elsewhere too: an encoder of its own


# --- loops_keep_their_list (lowering/own_list.py) ------------------------------------------------------
# backend/src/v2/driver/resolve.go, resolveInputs: the iteration driver deletes the loop's items input
# (`delete(inputs.ParameterValues, itemsInput)`) before it sets the item, so a task of the body that
# reads the same list finds no such input in its parent DAG.


def test_own_list_leaves_loops_that_do_not_read_their_list_alone():
    g = graph(
        loop("for-1", param("xs"), step("use", reads("x", item("for-1"), "int"), reads("ys", param("ys"))),
             item_type="int"),
        loop("for-2", const([1, 2]), step("scale", reads("x", item("for-2"), "int"), reads("all", const([1, 2]))),
             item_type="int"),  # a constant is written into the task, not a DAG input
        parameters=(Parameter("xs", "list:int", [1]), Parameter("ys", "list:int", [1])))
    assert loops_keep_their_list(g) == g


def test_own_list_loop_runs_over_a_copy_the_body_does_not_read():
    scale = step("scale", reads("x", item("for-1"), "int"), reads("xs", param("xs"), "list:int"), makes=("y",))
    g = graph(loop("for-1", param("xs"), scale, item_type="int", location=AT_LOOP),
              parameters=(Parameter("xs", "list:int", [1, 2]),))

    copy, looped = loops_keep_their_list(g).body

    assert without_code(copy) == generated("for_1_items", reads("items", param("xs"), "list:int"),
                                           makes=(Output("items", "list:int"),), location=AT_LOOP)
    assert looped == replace(g.body[0], items=task("for_1_items", "items"))  # body unchanged: still reads xs
    assert run_code(copy, items=[3, 1, 2])["items"] == [3, 1, 2]
    assert run_code(copy, items=0)["items"] == []  # a filler of a guarded loop around it: nothing to loop over


@pytest.mark.parametrize("reader", [
    pytest.param(call("scale_all", "scale", reads("xs", param("xs"), "list")), id="nested-pipeline-call"),
    pytest.param(condition("condition-1", branch(IfTest("not", tests=(truth(param("xs")),)), step("warn"))),
                 id="condition-test"),
    pytest.param(loop("for-2", param("xs"), step("pair", reads("a", item("for-2")))), id="inner-loop"),
    pytest.param(loop("for-2", const([1]), step("deep", reads("xs", param("xs")))), id="task-in-inner-loop"),
])
def test_own_list_sees_every_kind_of_reader(reader):
    g = graph(loop("for-1", param("xs"), reader, item_type="int"))  # xs's type unknown: a list

    copy, looped = loops_keep_their_list(g).body

    assert without_code(copy) == generated("for_1_items", reads("items", param("xs"), "list"),
                                           makes=(Output("items", "list"),))
    assert looped.items == task("for_1_items", "items") and looped.body == (reader,)


def test_own_list_of_an_inner_loop_over_the_outer_item():
    # for row in rows: for v in row: use(v, row) -- the inner iteration driver deletes `row`
    use = step("use", reads("v", item("for-2"), "int"), reads("row", item("for-1"), "list:int"))
    g = graph(loop("for-1", param("rows"), loop("for-2", item("for-1"), use, item_type="int"), item_type="list:int"))

    outer, = loops_keep_their_list(g).body

    copy, inner = outer.body
    assert outer.items == param("rows")
    assert without_code(copy) == generated("for_2_items", reads("items", item("for-1"), "list:int"),
                                           makes=(Output("items", "list:int"),))
    assert inner == replace(g.body[0].body[0], items=task("for_2_items", "items"))


def test_own_list_is_idempotent():
    g = graph(loop("for-1", task("make", "xs"), step("scale", reads("xs", task("make", "xs")))))
    once = loops_keep_their_list(g)
    assert once != g
    assert loops_keep_their_list(once) == once


# --- plain_nested_results (lowering/nested_collected.py) -----------------------------------------------
# backend/src/v2/driver/resolve.go, CollectInputs: collecting a nested pipeline's output across a loop
# walks every loop and nested DAG below breadth first and appends each container's value to one flat
# list (Python makes a list of lists); resolveUpstreamParameters/GetProducerTask: a OneOf returned by a
# nested pipeline needs a branch ML Metadata marks complete (before 2.17 the state does not reach the
# caller, kubeflow/pipelines#13322). Returned by one task, the value is read like any task output.


def _collecting(items, return_type="list:float", name="scores", loop_id="for-1", producer="score"):
    """A nested pipeline returning what its loop collected (`return [score(k) for k in items]`)."""
    body = loop(loop_id, items, step(producer, reads("k", item(loop_id), "int"), makes=("result",)), item_type="int")
    return sub(name, body, parameters=(Parameter("ks", "list:int", [1]),), returns=collected(producer),
               return_type=return_type)


def test_nested_results_left_alone_when_the_driver_reads_them_right():
    plain = sub("plain", step("fit", makes=("result",)), returns=task("fit"), return_type="float")
    nothing = sub("nothing", step("log"))
    # an untyped list travels as artifacts (README's notes on nesting), even called in a loop
    untyped = _collecting(param("ks"), return_type="any", name="untyped", loop_id="for-2", producer="score_2")
    literal = _collecting(const([1, 2]))  # never empty, and not called in a loop
    g = graph(call("p", "plain"), call("n", "nothing"), call("s", "scores"),
              loop("for-9", param("xs"), call("u", "untyped")),
              subpipelines=(plain, nothing, untyped, literal))
    assert plain_nested_results(g) == g


def test_nested_oneof_is_returned_by_an_uncached_step():
    choose = sub("choose-one", condition("condition-1", branch(truth(param("fast")), step("a", makes=("result",))),
                                         branch(None, step("b", makes=("result",))), location=AT_IF),
                 parameters=(Parameter("fast", "bool", True),), returns=oneof(task("a"), task("b")), return_type="int")
    g = graph(call("chosen", "choose-one", reads("fast", const(True), "bool")), subpipelines=(choose,))

    lowered = plain_nested_results(g)

    assert lowered.body == g.body
    nested, = lowered.subpipelines
    *kept, hand_on = nested.body
    assert kept == list(choose.body)
    assert without_code(hand_on) == generated("choose_one_result", reads("value", oneof(task("a"), task("b")), "int"),
                                              makes=(Output("value", "int"),), cache=False, location=AT_IF)
    assert nested.returns == task("choose_one_result", "value") and nested.return_type == "int"
    assert run_code(hand_on, value={"any": [1]})["value"] == {"any": [1]}


@pytest.mark.parametrize("shape", ["list-known-at-run-time", "called-in-a-loop"])
def test_nested_collected_list_is_returned_by_an_uncached_step(shape):
    if shape == "list-known-at-run-time":  # may be empty: the caller's reader finds no task to collect from
        scores, caller = _collecting(param("ks")), call("all_scores", "scores", reads("ks", param("ks"), "list:int"))
    else:  # the caller collects across a loop: the driver flattens the lists
        scores = _collecting(const([1, 2]))
        caller = loop("for-2", param("runs"), call("all_scores", "scores", reads("ks", const([1]), "list:int")))
    g = graph(caller, subpipelines=(scores,))

    nested, = plain_nested_results(g).subpipelines

    assert nested.body[:-1] == scores.body
    assert without_code(nested.body[-1]) == generated(
        "scores_result", reads("value", collected("score"), "list:float"), makes=(Output("value", "list:float"),),
        cache=False)
    assert nested.returns == task("scores_result", "value")


def test_nested_results_is_idempotent():
    g = graph(call("all_scores", "scores", reads("ks", param("ks"), "list:int")),
              subpipelines=(_collecting(param("ks")),))
    once = plain_nested_results(g)
    assert once != g
    assert plain_nested_results(once) == once


# --- collected_arguments_handed_on (lowering/nested_collected.py) --------------------------------------
# A nested pipeline's input cannot carry guard_empty_loops' flag (below): a step of the caller reads the
# collected list (backend/src/v2/driver/resolve.go, resolveUpstreamParameters -> CollectInputs) and the
# nested pipeline receives that one task's output.


def test_collected_arguments_left_alone_without_a_collected_argument():
    g = graph(loop("for-1", param("ks"), step("score", makes=("result",))),
              step("total", reads("scores", collected("score"), "list:float")),  # a step reads it itself
              call("report", "summary", reads("n", param("n"), "int"), reads("best", task("total"), "float")))
    assert collected_arguments_handed_on(g) == g


def test_collected_argument_is_handed_on_by_a_step_just_before_the_call():
    summary = call("report", "summary", reads("scores", collected("score"), "list:float"),
                   reads("n", param("n"), "int"), reads("names", collected("name", "label"), "list:str"),
                   location=AT_CALL)
    producer = loop("for-1", param("ks"), step("score", makes=("result",)), step("name", makes=("label",)))
    g = graph(producer, step("other"), summary)

    body = collected_arguments_handed_on(g).body

    assert body[:2] == g.body[:2]
    scores, names, report = body[2:]
    assert without_code(scores) == generated("report_scores", reads("value", collected("score"), "list:float"),
                                             makes=(Output("value", "list:float"),), location=AT_CALL)
    assert without_code(names) == generated("report_names", reads("value", collected("name", "label"), "list:str"),
                                            makes=(Output("value", "list:str"),), location=AT_CALL)
    assert report == replace(summary, inputs=(reads("scores", task("report_scores", "value"), "list:float"),
                                              reads("n", param("n"), "int"),
                                              reads("names", task("report_names", "value"), "list:str")))
    assert run_code(scores, value=[0.5, 0.25])["value"] == [0.5, 0.25]


def test_collected_argument_handed_on_where_the_call_sits():
    # in a branch of the main body, and in a nested pipeline's body
    inner_call = call("deep", "leaf", reads("xs", collected("inner"), "list"))
    outer = sub("outer", loop("for-2", param("ks"), step("inner", makes=("result",))), inner_call)
    in_branch = call("report", "summary", reads("scores", collected("score"), "list"))
    g = graph(loop("for-1", param("ks"), step("score", makes=("result",))),
              condition("condition-1", branch(truth(param("go")), step("first"), in_branch)),
              subpipelines=(outer,))

    lowered = collected_arguments_handed_on(g)

    first, hand_on, report = lowered.body[1].branches[0].body
    assert first == step("first")
    assert (hand_on.name, hand_on.inputs) == ("report_scores", (reads("value", collected("score"), "list"),))
    assert report.inputs == (reads("scores", task("report_scores", "value"), "list"),)
    nested_loop, nested_hand_on, deep = lowered.subpipelines[0].body
    assert nested_loop == outer.body[0]
    assert (nested_hand_on.name, nested_hand_on.inputs) == ("deep_xs", (reads("value", collected("inner"), "list"),))
    assert deep.inputs == (reads("xs", task("deep_xs", "value"), "list"),)


def test_collected_arguments_is_idempotent():
    g = graph(loop("for-1", param("ks"), step("score", makes=("result",))),
              call("report", "summary", reads("scores", collected("score"), "list:float")))
    once = collected_arguments_handed_on(g)
    assert once != g
    assert collected_arguments_handed_on(once) == once


# --- guard_empty_loops (lowering/empty_loops.py) -------------------------------------------------------
# backend/src/v2/driver/resolve.go, resolveUpstreamParameters / resolveUpstreamArtifacts: a reader of
# what a loop collected collects only when the loop ran iterations (getParallelForIterationCount > 0);
# with none it falls through to GetProducerTask and fails ("... not in tasks"), where Python reads [].
# The loop runs at least once (on a filler item), its tasks told whether the items are real.

XS = Parameter("xs", "list:int", [1, 2])


def _scores_loop(*extra, items=param("xs"), item_type="int", loop_id="for-1", name="score"):
    score = step(name, reads("x", item(loop_id), item_type), makes=(Output("result", "float"),))
    return loop(loop_id, items, score, *extra, item_type=item_type, location=AT_LOOP)


def test_guard_leaves_loops_alone_when_nothing_reads_what_they_collect_or_they_cannot_be_empty():
    inside = _scores_loop(step("same_iteration", reads("s", task("score"), "float")))
    literal = _scores_loop(loop_id="for-2", items=const([1, 2]), name="score_2")
    g = graph(inside, literal, step("total", reads("scores", collected("score_2"), "list:float")),
              parameters=(XS,))
    assert guard_empty_loops(g) == g
    assert unguarded_loops(g) == []


def test_guarded_loop_runs_on_its_list_or_one_filler_and_says_which():
    g = graph(_scores_loop(step("helper", reads("x", item("for-1"), "int"), generated=True)),
              step("total", reads("scores", collected("score"), "list:float"), makes=("result",)),
              parameters=(XS,))

    looped, has_items, guarded, total = guard_empty_loops(g).body

    assert without_code(looped) == generated("for_1_items_or_filler", reads("items", param("xs"), "list:int"),
                                             makes=(Output("looped", "list:int"),), location=AT_LOOP)
    assert without_code(has_items) == generated("for_1_has_items", reads("items", param("xs"), "list:int"),
                                                makes=(Output("has_items", "bool"),), location=AT_LOOP)
    flag = task("for_1_has_items", "has_items")
    score, helper = g.body[0].body
    # the user's step is told; kale_like's own steps run on the filler too
    assert guarded == replace(g.body[0], items=task("for_1_items_or_filler", "looped"),
                              body=(replace(score, inputs=score.inputs + (reads("_kl_run_if", flag, "bool"),)), helper))
    assert total == replace(g.body[1], inputs=g.body[1].inputs + (reads("_kl_empty_unless__scores", flag, "bool"),))

    assert run_code(looped, items=[4, 5]) == {"looped": [4, 5]}
    assert run_code(has_items, items=[4, 5]) == {"has_items": True}
    assert run_code(looped, items=[]) == {"looped": [0]}  # one iteration, on a filler
    assert run_code(has_items, items=[]) == {"has_items": False}  # ... that reads as [] after the loop
    assert run_code(looped, items=None) == {"looped": [0]}  # the filler of a guarded loop around this one
    assert run_code(has_items, items=None) == {"has_items": False}


def test_guard_tells_steps_in_branches_of_the_loop_and_readers_in_branches_after_it():
    maybe = step("maybe", reads("x", item("for-1"), "int"), makes=("result",))
    report = step("report", reads("all", collected("maybe"), "list"))
    g = graph(loop("for-1", param("xs"), condition("condition-1", branch(truth(item("for-1")), maybe)),
                   item_type="int"),
              condition("condition-2", branch(truth(param("verbose")), report)), parameters=(XS,))

    _, _, guarded, after = guard_empty_loops(g).body

    flag = task("for_1_has_items", "has_items")
    assert guarded.body[0].branches[0].body == (
        replace(maybe, inputs=maybe.inputs + (reads("_kl_run_if", flag, "bool"),)),)
    assert after.branches[0].body == (
        replace(report, inputs=report.inputs + (reads("_kl_empty_unless__all", flag, "bool"),)),)


@pytest.mark.parametrize("item_type, filler", [("int", 0), ("float", 0.0), ("str", ""), ("bool", False),
                                               (JSON, "null")])
def test_guard_filler_is_an_item_of_the_loop_type(item_type, filler):
    g = graph(_scores_loop(item_type=item_type, items=task("make", "xs")),
              step("total", reads("scores", collected("score"), "list")))

    looped = guard_empty_loops(g).body[0]

    assert looped.inputs == (reads("items", task("make", "xs"), list_of(item_type)),)  # make's type unknown
    result = run_code(looped, items=[])["looped"]
    assert result == [filler] and type(result[0]) is type(filler)
    if item_type == JSON:
        assert decoded(result[0], JSON) is None


def test_guard_filler_of_a_dict_item_holds_the_fields_the_body_selects():
    # for i, x in enumerate(xs): the loop runs over {"field_i": ..., "field_x": ...} and each task's
    # input selects a field (backend/src/v2/driver/resolve.go, handleParameterExpressionSelector fails
    # on a field the item lacks), so the filler must have them
    use = step("use", reads("i", item("for-1", "field_i"), "json:int"), reads("x", item("for-1", "field_x"), JSON))
    g = graph(loop("for-1", task("i_x_items", "items"), use, item_type="dict"),
              step("total", reads("out", collected("use"), "list")))

    looped = guard_empty_loops(g).body[0]

    assert sorted(run_code(looped, items=[])["looped"][0]) == ["field_i", "field_x"]


def test_guard_dict_filler_fields_decode_as_the_body_declares_them():
    use_v = step("use_v", reads("i", item("for-1", "field_i"), JSON), makes=(Output("v", "int"),), generated=True)
    g = graph(loop("for-1", task("i_x_items", "items"), use_v, item_type="dict"),
              step("total", reads("out", collected("use_v", "v"), "list")))

    filler, = run_code(guard_empty_loops(g).body[0], items=[])["looped"]

    decoded(filler["field_i"], JSON)  # a JSON text, as the filler of a loop over JSON items is ("null")


def test_guard_the_outermost_loop_the_reader_is_outside_of():
    # for a in xs: for b in ys: score(b); per_a(...collected of the inner loop)
    # then total(what per_a collected) and flat(what score collected, through both loops)
    inner = loop("for-2", param("ys"), step("score", reads("b", item("for-2"), "int"), makes=("result",)),
                 item_type="int")
    per_a = step("per_a", reads("scores", collected("score"), "list"), makes=("result",))
    g = graph(loop("for-1", param("xs"), inner, per_a, item_type="int"),
              step("total", reads("all", collected("per_a"), "list")),
              step("flat", reads("every", collected("score"), "list")),
              parameters=(XS, Parameter("ys", "list:int", [1])))

    outer_looped, outer_has, outer, total, flat = guard_empty_loops(g).body

    assert (outer_looped.name, outer_has.name) == ("for_1_items_or_filler", "for_1_has_items")
    inner_looped, inner_has, guarded_inner, told_per_a = outer.body
    assert (inner_looped.name, inner_has.name) == ("for_2_items_or_filler", "for_2_has_items")
    inner_flag, outer_flag = task("for_2_has_items", "has_items"), task("for_1_has_items", "has_items")
    # the step of the inner loop runs only if both lists are real: one flag per guarded loop around it
    assert guarded_inner.body[0].inputs == (reads("b", item("for-2"), "int"), reads("_kl_run_if", inner_flag, "bool"),
                                            reads("_kl_run_if__2", outer_flag, "bool"))
    assert told_per_a.inputs == (reads("scores", collected("score"), "list"),
                                 reads("_kl_run_if", outer_flag, "bool"),
                                 reads("_kl_empty_unless__scores", inner_flag, "bool"))
    assert total.inputs == (reads("all", collected("per_a"), "list"),
                            reads("_kl_empty_unless__all", outer_flag, "bool"))
    # an empty inner list in an iteration that ran adds nothing to what the driver collects: only the
    # outer loop's emptiness makes the flat list fail its reader
    assert flat.inputs == (reads("every", collected("score"), "list"),
                           reads("_kl_empty_unless__every", outer_flag, "bool"))


def test_guard_tells_a_nested_pipeline_called_in_the_loop_and_those_it_calls():
    leaf = sub("leaf", step("leaf_step", makes=("result",)))
    middle = sub("middle", step("mid_step", reads("k", param("k"), "int")), call("to_leaf", "leaf"),
                 parameters=(Parameter("k", "int", 0),))
    untouched = sub("elsewhere", step("lonely"))
    g = graph(loop("for-1", param("xs"), call("run_middle", "middle", reads("k", item("for-1"), "int"),
                                              makes=("result",)), item_type="int"),
              step("total", reads("all", collected("run_middle"), "list")),
              call("other", "elsewhere"),
              subpipelines=(leaf, middle, untouched), parameters=(XS,))

    lowered = guard_empty_loops(g)

    flag, caller_runs = task("for_1_has_items", "has_items"), param("kl_caller_runs")
    assert lowered.body[2].body[0].inputs == (reads("k", item("for-1"), "int"), reads("kl_caller_runs", flag, "bool"))
    new_leaf, new_middle, new_untouched = lowered.subpipelines
    assert new_untouched == untouched
    for nested in (new_leaf, new_middle):  # true by default: other callers run it as before
        assert nested.parameters[-1] == Parameter("kl_caller_runs", "bool", True)
    assert new_leaf.body[0].inputs == (reads("_kl_run_if", caller_runs, "bool"),)
    mid_step, to_leaf = new_middle.body
    assert mid_step.inputs == (reads("k", param("k"), "int"), reads("_kl_run_if", caller_runs, "bool"))
    assert to_leaf.inputs == (reads("kl_caller_runs", caller_runs, "bool"),)


@pytest.mark.parametrize("why, shape", [
    ("its items' type (list) has no filler value", "list-items"),
    ("nested pipeline 'summary' reads what it collects", "nested-reader"),
    ("nested pipeline 'scores' returns what it collects", "nested-returns"),
])
def test_guard_refuses_what_it_cannot_tell_and_warns(why, shape):
    if shape == "list-items":
        g = graph(_scores_loop(item_type="list"), step("total", reads("scores", collected("score"), "list")))
    elif shape == "nested-reader":
        g = graph(_scores_loop(), call("report", "summary", reads("scores", collected("score"), "list")),
                  subpipelines=(sub("summary", step("s")),))
    else:
        g = graph(call("all", "scores", reads("ks", param("xs"), "list:int")), parameters=(XS,),
                  subpipelines=(sub("scores", _scores_loop(items=param("ks")), returns=collected("score"),
                                    parameters=(Parameter("ks", "list:int", [1]),)),))

    assert guard_empty_loops(g) == g
    warning, = unguarded_loops(g)
    assert warning.startswith("tiny.py:7: what this loop collects is read after it;")
    assert f"here: {why}\n" in warning


def _filler_iteration(lowered: StepGraph) -> list[str]:
    """Run one guarded loop of `lowered` (its first loop) on an empty list, as the cluster would: the
    filler iteration's steps in body order, a step told `_kl_run_if` false standing still (the step
    runtime's _kl_read_flags). Returns the names of the steps whose code ran; raises what a step raised."""
    nodes = {node.name: node for node in lowered.body if isinstance(node, Step)}
    the_loop = next(node for node in lowered.body if isinstance(node, Loop))
    made = {the_loop.items.source: run_code(nodes[the_loop.items.source], items=[])}
    flag_step = next(name for name in nodes if name.endswith("_has_items"))
    made[flag_step] = run_code(nodes[flag_step], items=[])
    filler = made[the_loop.items.source][the_loop.items.output][0]
    ran = []
    for node in the_loop.body:
        assert isinstance(node, Step)
        values = {}
        for value in node.inputs:
            if value.ref.kind == "item":
                raw = filler[value.ref.output] if value.ref.output else filler
            else:
                raw = made[value.ref.source][value.ref.output]
            values[value.name] = _kl_coerce(raw, value.type)
        if any(name.startswith("_kl_run_if") and not flag for name, flag in values.items()):
            made[node.name] = {output.name: None for output in node.outputs}  # stands still
            continue
        made[node.name] = run_code(node, **values)
        ran.append(node.name)
    return ran


def test_filler_iteration_runs_only_kale_likes_own_steps():
    # what the simulation below relies on: a told step stands still, a generated one runs
    helper = step("helper", reads("x", item("for-1"), "int"), makes=(Output("doubled", "int"),),
                  code="doubled = x * 2\n", generated=True)
    score = step("score", reads("d", task("helper", "doubled"), "int"), makes=(Output("result", "float"),),
                 code="raise AssertionError('the user code must not run on a filler')\n")
    g = graph(loop("for-1", param("xs"), helper, score, item_type="int"),
              step("total", reads("scores", collected("score"), "list:float")), parameters=(XS,))

    assert _filler_iteration(guard_empty_loops(g)) == ["helper"]


@pytest.mark.parametrize("code, item_type, loop_items", [
    pytest.param("v = 10 // x\n", "int", param("xs"), id="int-filler-0"),
    pytest.param("v = x['a']\n", JSON, task("x_items", "items"), id="json-filler-null"),
])
def test_filler_iteration_does_not_run_user_expressions(code, item_type, loop_items):
    # for x in xs: out.append(use(10 // x)) -- lowering makes the expression `10 // x` a generated step `use_v`
    use_v = replace(step("use_v", reads("x", item("for-1"), item_type), makes=(Output("v", "int"),), code=code,
                         generated=True), from_expression=True)
    use = step("use", reads("v", task("use_v", "v"), "int"), makes=(Output("out", "int"),), code="out = v\n")
    g = graph(loop("for-1", loop_items, use_v, use, item_type=item_type),
              step("total", reads("v", collected("use", "out"), "list:int")), parameters=(XS,))

    assert _filler_iteration(guard_empty_loops(g)) == []  # nothing of the user's runs, nothing fails


# --- mark_chosen_branches (lowering/branch_state.py) ---------------------------------------------------
# backend/src/v2/driver/resolve.go, GetProducerTask: a OneOf takes the first branch whose state is
# COMPLETE or CACHED ("processing OneOf: No successful task found"); only a launcher that ran sets a
# group's state (backend/src/v2/metadata/client.go, UpdateDAGExecutionsState), and a cache hit starts
# none (backend/src/v2/driver/container.go). An uncached step at the end of the branch always runs.


def _if_else(**where):
    return condition("condition-1",
                     branch(truth(param("fast")), step("a1", makes=("result",)),
                            step("a2", reads("v", task("a1")), makes=("result",)),
                            step("log", after=("a1",))),
                     branch(None, step("b", makes=("result",))), **where)


def test_chosen_branches_left_alone_without_a_oneof():
    g = graph(_if_else(), step("after_if", reads("v", task("a2"))))  # (a user error, but no OneOf)
    assert mark_chosen_branches(g) == g


def test_chosen_branches_end_with_an_uncached_step_after_their_last_tasks():
    g = graph(_if_else(location=AT_IF), step("use", reads("v", oneof(task("a2"), task("b")))))

    marked, use = mark_chosen_branches(g).body

    assert use == g.body[1]
    first, second = marked.branches
    assert first.test == truth(param("fast")) and second.test is None
    *kept, done = first.body
    assert kept == list(g.body[0].branches[0].body)
    # a1 is read by a2 and waited for by log: a2 and log are the branch's last tasks
    assert without_code(done) == generated("condition_1_branch_1_done", after=("a2", "log"), cache=False,
                                           location=AT_IF)
    assert second.body[0] == step("b", makes=("result",))
    assert without_code(second.body[1]) == generated("condition_1_branch_2_done", after=("b",), cache=False,
                                                     location=AT_IF)
    assert run_code(done) == {}  # runs, hands nothing on: only its launcher's bookkeeping matters


def test_chosen_branches_only_the_branches_a_oneof_reads():
    # three branches; the OneOf reads the first and the third (the second assigns nothing read after)
    cond = condition("condition-1", branch(truth(param("a")), step("x1", makes=("result",))),
                     branch(truth(param("b")), step("noop")),
                     branch(None, call("x3", "nested", makes=("result",))))
    g = graph(cond, step("use", reads("v", oneof(task("x1"), task("x3")))))

    first, second, third = mark_chosen_branches(g).body[0].branches

    assert [node.name for node in first.body] == ["x1", "condition_1_branch_1_done"]
    assert second == cond.branches[1]
    assert [node.name for node in third.body] == ["x3", "condition_1_branch_3_done"]
    assert third.body[1].after == ("x3",)


@pytest.mark.parametrize("where", ["main-returns", "nested-returns", "nested-body"])
def test_chosen_branches_where_the_oneof_is_read(where):
    chosen = oneof(task("a2"), task("b"))
    if where == "main-returns":
        g = graph(_if_else(), returns=chosen)
    elif where == "nested-returns":
        g = graph(call("c", "choose"), subpipelines=(sub("choose", _if_else(), returns=chosen),))
    else:
        g = graph(call("c", "choose"), subpipelines=(sub("choose", _if_else(), step("use", reads("v", chosen))),))

    lowered = mark_chosen_branches(g)

    cond = lowered.body[0] if where == "main-returns" else lowered.subpipelines[0].body[0]
    assert [branch.body[-1].name for branch in cond.branches] == ["condition_1_branch_1_done",
                                                                  "condition_1_branch_2_done"]


# --- mark_the_end (lowering/exit_state.py) ---------------------------------------------------------------
# backend/src/v2/driver/resolve.go, the TaskFinalStatus case of resolveInputParameter: the exit step
# reads the state ML Metadata holds for the group it watches, which only a launcher that ran sets
# (backend/src/v2/metadata/client.go, UpdateDAGExecutionsState); cache hits start none
# (backend/src/v2/driver/container.go), so an all-cached re-run would read RUNNING.

def _exit_step() -> Step:
    return step("alert", reads("pipeline_status", Ref("final_status"), "dict"), location=AT_EXIT)


def test_the_end_left_alone_without_exit_handler_or_top_level_task():
    no_exit_handler = graph(step("prep"), step("train"))
    assert mark_the_end(no_exit_handler) == no_exit_handler
    only_a_loop = graph(loop("for-1", param("xs"), step("score")), exit_step=_exit_step())
    assert mark_the_end(only_a_loop) == only_a_loop


def test_the_end_is_an_uncached_step_after_the_last_top_level_tasks():
    body = (step("prep", makes=("result",)), step("train", reads("d", task("prep"))),
            step("report", after=("prep",)), call("publish", "nested"),
            loop("for-1", param("xs"), step("score", reads("d", task("prep")))),
            condition("condition-1", branch(truth(param("go")), step("deploy"))))
    g = graph(*body, exit_step=_exit_step())

    lowered = mark_the_end(g)

    assert lowered.body[:-1] == body and lowered.exit_step == g.exit_step
    assert without_code(lowered.body[-1]) == generated("all_done", after=("train", "report", "publish"), cache=False,
                                                       location=AT_EXIT)
    assert run_code(lowered.body[-1]) == {}


def test_the_end_takes_a_free_name():
    g = graph(step("all_done"), exit_step=replace(_exit_step(), name="all_done_2"))
    assert mark_the_end(g).body[-1].name == "all_done_3"


# --- lower(): every pass, in PASSES order --------------------------------------------------------------


def test_lower_applies_every_pass_in_passes_order(monkeypatch):
    assert [p for p in lowering.PASSES if p in SEVEN] == list(SEVEN)  # all seven, in the order this file uses
    order = [p.__name__ for p in lowering.PASSES]
    called: list[str] = []

    def recording(lowering_pass):
        def run(g: StepGraph) -> StepGraph:
            called.append(lowering_pass.__name__)
            return lowering_pass(g)
        return run

    monkeypatch.setattr(lowering, "PASSES", tuple(recording(p) for p in lowering.PASSES))
    lower(_every_shape())
    assert called == order


def _every_shape() -> StepGraph:
    """A graph each of the seven passes rewrites."""
    leaf = _collecting(param("ks"), loop_id="for-3", producer="score_3")
    return graph(
        loop("for-1", param("raw"), step("use", reads("x", item("for-1")), makes=("result",))),  # untyped items
        loop("for-2", param("xs"), step("scale", reads("x", item("for-2"), "int"), reads("xs", param("xs"), "list:int"),
                                        makes=(Output("result", "float"),)), item_type="int"),  # reads its list
        step("total", reads("scores", collected("scale"), "list:float")),  # reads what may be empty
        call("nested", "scores", reads("ks", param("xs"), "list:int")),  # returns a collected list
        call("report", "summary", reads("uses", collected("use"), "list")),  # gets a collected list
        _if_else(), step("use_if", reads("v", oneof(task("a2"), task("b")))),  # reads a OneOf
        parameters=(XS, Parameter("raw", "list", [1])), subpipelines=(leaf, sub("summary", step("s"))),
        exit_step=_exit_step())


def test_lower_is_the_passes_one_after_the_other():
    g = _every_shape()
    for lowering_pass in SEVEN:
        assert lowering_pass(g) != g, lowering_pass.__name__  # each pass has something to do here
    assert lower(g) == functools.reduce(lambda done, lowering_pass: lowering_pass(done), lowering.PASSES, g)


def test_lower_guards_the_loop_a_nested_pipeline_returns_through_its_step():
    # plain_nested_results before guard_empty_loops: the step handing the list on is a reader the guard tells
    g = _every_shape()
    assert any("returns what it collects" in warning for warning in unguarded_loops(g))

    lowered = lower(g)

    nested = next(s for s in lowered.subpipelines if s.name == "scores")
    assert [node.name for node in nested.body[:2]] == ["for_3_items_or_filler", "for_3_has_items"]
    assert nested.returns == task("scores_result", "value")
    assert nested.body[-1].inputs[-1] == reads("_kl_empty_unless__value", task("for_3_has_items", "has_items"), "bool")
    assert not any("returns what it collects" in warning for warning in lowering_warnings(g))


def test_lower_an_untyped_loop_reading_its_list_needs_one_step():
    # encode_untyped_loop_items before loops_keep_their_list: the loop already runs over the encoder's list
    g = graph(loop("for-1", param("xs"), step("scale", reads("x", item("for-1")), reads("xs", param("xs"), "list"))))

    encoder, looped = lower(g).body

    assert encoder.name == "xs_items" and looped.items == task("xs_items", "items")
    assert looped.body[0].inputs[1] == reads("xs", param("xs"), "list")  # the list the driver leaves alone
