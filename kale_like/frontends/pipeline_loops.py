"""Loops in a `@pipeline` body: `for` over lists, comprehensions of step calls, collecting.

`for x in items:` is a KFP ParallelFor; `results.append(step(x))` (or `[step(x) for x in xs]`)
used after the loop is Collected. Items written as a literal list of one primitive type loop as
they are; items an expression makes (`range(n)`, `enumerate(xs)`, `zip(a, b)`, `d.items()`, a list
of dicts) are listed by a generated step first.
"""

from __future__ import annotations

import ast
from dataclasses import replace

import libcst as cst

from kale_like.frontends import pipeline_expressions as expressions
from kale_like.frontends.pipeline_body_base import BodyBase, _name, _text
from kale_like.frontends.pipeline_values import (
    PRIMITIVES, Collector, Scope, Value, element_type, literal, type_of_value,
)
from kale_like.graph.model import ANY, Expression, Loop, Node, Output, Ref
from kale_like.graph.types import TypeName, element_of, list_of


class LoopCompiler(BodyBase):
    """Compiles loops, comprehensions and `.append` collecting."""

    def keyed_append(self, node: cst.Assign, target: cst.Subscript, scope: Scope) -> list[Node]:
        """`scores[key] = value` in a loop over a dict made with `scores = {}`: each iteration hands on a
        (key, value) entry (a generated step); read after the loop, `scores` is `dict(entries)`, keys in
        the loop's order and a later key winning, as in Python."""
        assert isinstance(target.value, cst.Name)
        owner = target.value.value
        collector = self._collecting(node, owner, scope, keyed=True)
        index = target.slice[0].slice if len(target.slice) == 1 else None
        if not isinstance(index, cst.Index):
            self.refuse(target, f"'{owner}[...]' takes one key here", f"e.g. {owner}[name] = train(name)")
        key = self.value(index.value, scope, "key")
        value = self.value(node.value, scope, owner)
        collector.appended = self._expression_step(node, "entry = (key, value)\n", {"key": key, "value": value},
                                                   (Output("entry", ANY),), scope, f"{owner}_entry")
        collector.append_scope = scope
        collector.line = self.module.where(node).line or 0
        return []

    def _append_in_place(self, call: cst.Call, owner: cst.Name, scope: Scope) -> list[Node]:
        """`xs = []` then `xs.append(v)` outside any loop (and branch) is `xs = xs + [v]`, as Python builds it."""
        if len(call.args) != 1 or call.args[0].keyword is not None or call.args[0].star:
            self.refuse(call, ".append() takes one value", f"e.g. {owner.value}.append(train(x))")
        if isinstance(self.env.names.get(owner.value), Collector):
            self.env.names[owner.value] = Value(Ref("constant", value=[]), "list", scope)
        self.built_lists.add(owner.value)
        value = cst.BinaryOperation(owner, cst.Add(), cst.List([cst.Element(call.args[0].value)]))
        self.module.positions[value] = self.module.positions.get(call)
        return self.assign(cst.Assign([cst.AssignTarget(owner)], value), scope, call)

    def _collecting(self, node: cst.CSTNode, owner: str, scope: Scope, keyed: bool = False) -> Collector:
        """The collector `owner` names, checked to be filled here: inside a loop, once."""
        collector = self.env.names.get(owner)
        made = f"{owner} = {{}}" if keyed else f"{owner} = []"
        if owner in self.built_lists and not keyed:
            bound = self.env.names.get(owner)
            inner = scope[len(bound.scope):] if isinstance(bound, Value) else ()
            if not any(kind == "loop" for kind, *_ in inner):
                self.refuse(node, f"'{owner}.append(...)' is inside an if, so '{owner}' would be changed in only some "
                                  "branches", f"assign {owner} in every branch (e.g. {owner} = {owner} + [value] / "
                                  f"else: {owner} = {owner})")
            self.refuse(node, f"'{owner}' already holds values appended outside a loop; a loop collects into a list "
                              "of its own", f"collect into a new list, then join them: {owner} + collected")
        if isinstance(collector, Value) and collector.ref.kind == "parameter":
            self.refuse(node, f"'{owner}' is a parameter, which a pipeline body does not change",
                        f"make a new value, e.g. more = {owner} + [value]")
        if not isinstance(collector, Collector) or collector.keyed != keyed:
            self.refuse(node, f"'{owner}' is not a {'dict' if keyed else 'list'} created with {made} in this pipeline",
                        f"write {made} before the loop")
        inner = scope[len(collector.scope):]
        what = f"{owner}[...] = ..." if keyed else f"{owner}.append(...)"
        if not any(kind == "loop" for kind, *_ in inner):
            self.refuse(node, f"'{what}' is inside an if but outside any loop after {made}",
                        f"assign the whole value in each branch instead (e.g. {owner} = [a] / else: {owner} = [])")
        if any(kind != "loop" for kind, *_ in inner):
            self.refuse(node, f"'{what}' is inside an if in the loop, which kale_like makes a filter of only when "
                              "that if is the loop's whole body and each branch fills lists of its own",
                        "make the if the loop's only statement, e.g. for x in xs: if test: "
                        f"{owner}.append(step(x))")
        if collector.appended is not None:
            self.refuse(node, f"'{owner}' is already filled at line {collector.line}",
                        "fill each list or dict with one statement")
        return collector

    def append(self, call: cst.Call, owner: cst.Name, scope: Scope) -> list[Node]:
        bound = self.env.names.get(owner.value)
        if (isinstance(bound, Collector) and not bound.keyed and bound.appended is None and bound.scope == scope) \
                or (isinstance(bound, Value) and owner.value in self.built_lists and bound.scope == scope):
            return self._append_in_place(call, owner, scope)
        collector = self._collecting(call, owner.value, scope)
        if len(call.args) != 1:
            self.refuse(call, ".append() takes one value", f"e.g. {owner.value}.append(train(x))")
        argument = call.args[0].value
        nodes: list[Node] = []
        if isinstance(argument, cst.Call) and self.callee(argument) is not None:
            temporary = f"_kl_{owner.value}_item"
            nodes = self.call(argument, scope, [temporary])
            made = self.env.names.pop(temporary)
            assert isinstance(made, Value)  # call() bound the step's result to the name
            value = self._rename_output(nodes, made, owner.value)
        else:
            value = self.value(argument, scope, owner.value)
            if value.ref.kind != "task" or value.scope != scope:
                # an item, a parameter, a constant or an earlier result: KFP collects only what a task in the
                # loop outputs, so a generated step in the loop hands the value on
                value = self._expression_step(argument, f"{owner.value} = value\n", {"value": value},
                                              (Output(owner.value, value.type),), scope, f"{owner.value}_item")
        collector.appended = value
        collector.append_scope = scope
        collector.line = self.module.where(call).line or 0
        return nodes

    def loop(self, node: cst.For, scope: Scope) -> list[Node]:
        if node.orelse is not None:
            self.refuse(node.orelse, "for/else is not supported in a pipeline body", "remove the else")
        if node.asynchronous is not None:
            self.refuse(node, "async for is not supported in a pipeline body")
        loop_id = self.state.next_id("for")
        items, item_type, parallelism, binder = self.iterable(node.iter, node.target, scope, loop_id)
        inner: Scope = scope + (("loop", loop_id),)
        saved = dict(self.env.names)
        binder(inner)
        helpers = self._take_pending()
        body = self.block(node.body.body, inner)
        self._close_scope(saved, inner)
        return helpers + [Loop(loop_id, items, item_type, tuple(body), self.module.where(node), parallelism,
                               self.loop_fields.get(loop_id, ()), self._header(node.target, node.iter))]

    def comprehension(self, node: cst.ListComp, scope: Scope, name: str) -> list[Node]:
        if len(node.for_in.ifs) or node.for_in.inner_for_in is not None:
            self.refuse(node, "a comprehension with if or several for clauses is not supported",
                        "write the for loop out")
        if not (isinstance(node.elt, cst.Call) and self.callee(node.elt) is not None):
            self.refuse(node.elt, "a list comprehension in a pipeline body must call a step",
                        "e.g. scores = [train(s) for s in seeds]")
        loop_id = self.state.next_id("for")
        items, item_type, parallelism, binder = self.iterable(node.for_in.iter, node.for_in.target, scope, loop_id)
        inner: Scope = scope + (("loop", loop_id),)
        saved = dict(self.env.names)
        binder(inner)
        helpers = self._take_pending()
        collector = Collector(scope, self.module.where(node).line or 0)
        self.env.names[name] = collector
        temporary = f"_kl_{name}_item"
        body = self.call(node.elt, inner, [temporary])
        body = self._take_pending() + body  # what its arguments compute runs in each iteration
        value = self.env.names.pop(temporary)
        assert isinstance(value, Value)  # call() bound the step's result to the name
        collector.appended = self._rename_output(body, value, name)
        collector.append_scope = inner
        self._close_scope(saved, inner, keep=(name,))
        return helpers + [Loop(loop_id, items, item_type, tuple(body), self.module.where(node), parallelism,
                               self.loop_fields.get(loop_id, ()), self._header(node.for_in.target, node.for_in.iter))]

    def _close_scope(self, saved: dict, inner: Scope, keep: tuple[str, ...] = ()) -> None:
        """Names bound inside a loop stay known (to report misuse) but keep their inner scope."""
        for name, bound in list(self.env.names.items()):
            if name in saved and saved[name] is bound or name in keep:
                continue
            if isinstance(bound, Value) and bound.ref.kind == "item":
                if name in saved:
                    self.env.names[name] = saved[name]
                else:
                    del self.env.names[name]

    def iterable(self, node: cst.BaseExpression, target, scope: Scope, loop_id: str):
        parallelism = None
        if isinstance(node, cst.Call) and _name(node.func) == "parallel":
            node, parallelism = self.parallel_arguments(node)
        else:
            node, parallelism = self._inner_parallel(node)
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
                and node.func.attr.value in ("items", "keys", "values") and not node.args:
            return self.dict_iterable(node, target, scope, loop_id, node.func.attr.value, parallelism)
        if isinstance(target, (cst.Tuple, cst.List)) or not (isinstance(node, cst.Name) or self._calls_step(node)
                                                             or literal(node)[0]):
            return self.loop_source(node, target, scope, loop_id, parallelism)
        value = self.value(node, scope)
        if value.ref.kind == "constant":
            if isinstance(value.ref.value, dict):
                return self.dict_items(node, value, target, scope, loop_id, "keys", parallelism)
            if isinstance(value.ref.value, str):  # its characters, as Python loops over a str
                return self.loop_source(node, target, scope, loop_id, parallelism)
            if not isinstance(value.ref.value, (list, tuple)):
                self.refuse(node, f"cannot loop over a {type(value.ref.value).__name__}", "loop over a list")
            if not _static_items(list(value.ref.value)):
                return self.loop_source(node, target, scope, loop_id, parallelism)
            return self._static(node, list(value.ref.value), target, scope, loop_id, parallelism)
        if value.type == "dict":
            return self.dict_items(node, value, target, scope, loop_id, "keys", parallelism)
        if value.ref.kind in ("collected", "oneof"):  # KFP loops over a task's output: an expression lists them
            return self.loop_source(node, target, scope, loop_id, parallelism)
        if value.type == "str":  # its characters, as Python loops over a str: an expression lists them
            return self.loop_source(node, target, scope, loop_id, parallelism)
        if value.type in PRIMITIVES:
            self.refuse(node, f"cannot loop over a {value.type}", "loop over a list")
        if value.ref.kind == "task" and value.type == ANY:
            if value.ref.output == "":  # a nested pipeline's result: its type is fixed by its return
                self.refuse(node, f"'{_text(node)}' is the untyped result of a nested pipeline, which KFP cannot "
                                  "loop over", "annotate the return type of the step that nested pipeline returns "
                                  "(e.g. -> list)")
            self._infer(value, "list")
            value = replace(value, type="list")
        name = self.single_target(target)
        item_type = element_type(value.type)
        return value.ref, item_type, parallelism, self._binder(name, Ref("item", loop_id), item_type)

    def loop_source(self, node: cst.BaseExpression, target, scope: Scope, loop_id: str, parallelism):
        """A loop over what an expression makes (`range(n)`, `enumerate(xs)`, `zip(a, b)`, `sorted(xs)`,
        a literal list of dicts, ...): an expression lists the items; a loop unpacking its items
        (`for i, x in enumerate(xs)`) runs over records, a field per name (how items of unknown type
        reach the steps on a cluster is the lowering's concern: lowering/loop_items.py)."""
        names = self._loop_names(target)
        ok, constant = literal(node)
        if ok and isinstance(constant, (list, tuple)) and _static_items(list(constant)) and len(names) == 1:
            return self._static(node, list(constant), target, scope, loop_id, parallelism)
        label = "_".join(names) or "items"
        text, tree, values = self._expression_parts(node, scope)
        known = _known_items(text, tree, {key: value.ref.value for key, value in values.items()
                                          if value.ref.kind == "constant"}, len(values))
        if known is not None and _static_items(known) and len(names) == 1:
            return self._static(node, known, target, scope, loop_id, parallelism)  # e.g. range(3)
        if len(names) == 1:  # (items of unknown type: lowering/loop_items.py sees they reach the steps as such)
            kind = expressions.infer_type(expressions.parse(f"list({text})"),
                                          {key: self._known_type(value) for key, value in values.items()})
            kind = list_of(element_type(kind))
            made = self._expression_step(node, f"items = list({text})\n", values, (Output("items", kind),), scope,
                                         f"{label}_items")
            item_type = element_type(kind)
            return made.ref, item_type, parallelism, self._binder(names[0], Ref("item", loop_id), item_type)
        # records, one field per name (clear of kfp's own attributes of a loop item: `item.name` is its name)
        fields = ", ".join(f"'field_{name}': {name}" for name in names)
        unpacked = " ".join(_text(target).split())  # as written: `i, (a, b)`
        code = f"items = [{{{fields}}} for {unpacked} in {text}]\n"
        made = self._expression_step(node, code, values, (Output("items", "list"),), scope, f"{label}_items")
        self.loop_fields[loop_id] = tuple(Output(f"field_{name}") for name in names)

        def bind(inner: Scope) -> None:
            for name in names:
                self.env.names[name] = Value(Ref("item", loop_id, f"field_{name}"), ANY, inner)

        return made.ref, "dict", parallelism, bind

    def _header(self, target: cst.BaseExpression, items: cst.BaseExpression) -> str:
        """`for i, x in enumerate(xs)`, on one line however it was written (`parallel(xs, parallelism=3)`
        is shown as `xs`: the graph says how many at a time)."""
        if isinstance(items, cst.Call) and _name(items.func) == "parallel":
            items = self.parallel_arguments(items)[0]
        else:
            items = self._inner_parallel(items)[0]  # `enumerate(parallel(xs))` as `enumerate(xs)`
        return " ".join(f"for {_text(target).strip()} in {_text(items).strip()}".split())

    def _loop_names(self, target) -> list[str]:
        """The names a loop's target binds, nested ones too (`for i, (a, b) in enumerate(zip(xs, ys))`)."""
        if isinstance(target, cst.Name):
            return [target.value]
        parts = [e.value for e in target.elements if not isinstance(e, cst.StarredElement)] \
            if isinstance(target, (cst.Tuple, cst.List)) else []
        if parts and len(parts) == len(target.elements) \
                and all(isinstance(part, (cst.Name, cst.Tuple, cst.List)) for part in parts):
            names = [name for part in parts for name in self._loop_names(part)]
            if len(set(names)) == len(names):
                return names
        self.refuse(target, "a loop here unpacks each item into plain names (nested tuples of names) only",
                    "e.g. for i, (a, b) in enumerate(zip(xs, ys)): (unpack anything else inside a step)")

    def _inner_parallel(self, node: cst.BaseExpression) -> tuple[cst.BaseExpression, int | None]:
        """`enumerate(parallel(xs, parallelism=2))`: the loop source with `parallel(...)` read as its items,
        and its parallelism (one `parallel` a loop; it limits the loop, whatever wraps its items)."""
        calls: list[cst.Call] = []

        class Find(cst.CSTVisitor):
            def visit_Call(self, call: cst.Call) -> None:
                if _name(call.func) == "parallel":
                    calls.append(call)

        node.visit(Find())
        if not calls:
            return node, None
        if len(calls) > 1:
            self.refuse(calls[1], "a loop takes one parallel(...)", "wrap the loop's items in parallel() once")
        items, parallelism = self.parallel_arguments(calls[0])
        positions = self.module.positions

        class Unwrap(cst.CSTTransformer):
            def leave_Call(self, original: cst.Call, updated: cst.BaseExpression) -> cst.BaseExpression:
                return items if original is calls[0] else updated

        unwrapped = node.visit(Unwrap())
        assert isinstance(unwrapped, cst.BaseExpression)
        positions[unwrapped] = positions.get(node)
        return unwrapped, parallelism

    def parallel_arguments(self, call: cst.Call):
        items, parallelism = None, None
        for index, argument in enumerate(call.args):
            key = argument.keyword.value if argument.keyword else ("items" if index == 0 else "parallelism")
            if key == "items":
                items = argument.value
            elif key == "parallelism":
                ok, parallelism = literal(argument.value)
                if not ok or type(parallelism) is not int or parallelism < 1:
                    self.refuse(argument, "parallelism must be a positive int literal", "e.g. parallelism=4")
            else:
                self.refuse(argument, f"parallel() has no argument '{key}'", "parallel(items, parallelism=N)")
        if items is None:
            self.refuse(call, "parallel() needs the items to loop over", "parallel(items, parallelism=N)")
        return items, parallelism

    def single_target(self, target) -> str:
        if isinstance(target, cst.Name):
            return target.value
        self.refuse(target, "unpacking loop items works only with dict.items()",
                    "loop over one name, or over d.items() as `for key, value in d.items()`")
        return ""

    def _binder(self, name: str, ref: Ref, item_type: TypeName, line: int = 0):
        def bind(scope: Scope) -> None:
            self.env.names[name] = Value(ref, item_type, scope, line)

        return bind

    def _static(self, node, items: list, target, scope: Scope, loop_id: str, parallelism):
        """A loop over items KFP takes as they are written (`_static_items`: one scalar type, not empty)."""
        assert _static_items(items)
        name = self.single_target(target)
        item_type = element_of(type_of_value(items))
        return Ref("constant", value=items), item_type, parallelism, self._binder(name, Ref("item", loop_id),
                                                                                   item_type)

    def dict_iterable(self, node: cst.Call, target, scope, loop_id, method, parallelism):
        assert isinstance(node.func, cst.Attribute)  # iterable() checked: d.items(), d.keys() or d.values()
        owner = self.value(node.func.value, scope)
        if owner.type != "dict" and not (owner.ref.kind == "constant" and isinstance(owner.ref.value, dict)):
            if owner.ref.kind == "task" and owner.type == ANY:
                self._infer(owner, "dict")
                owner = replace(owner, type="dict")
            else:
                self.refuse(node, f".{method}() needs a dict", "loop over a dict parameter or a step's dict result")
        return self.dict_items(node, owner, target, scope, loop_id, method, parallelism)

    def dict_items(self, node, owner: Value, target, scope: Scope, loop_id: str, method: str, parallelism):
        """Loop over a dict: static keys/values when known; otherwise a small step lists them."""
        if owner.ref.kind == "constant" and method in ("keys", "values"):
            values = list(owner.ref.value.keys() if method == "keys" else owner.ref.value.values())
            if _static_items(values):
                return self._static(node, values, target, scope, loop_id, parallelism)
        names = [self.single_target(target)] if method != "items" else self._pair(target)
        helper = self._items_step(node, owner, method, scope)
        ref = Ref("task", helper.name, helper.outputs[0].name)
        if method == "items":
            key, value = names
            self.loop_fields[loop_id] = (Output("entry_key"), Output("entry_value"))

            def bind(inner: Scope) -> None:
                self.env.names[key] = Value(Ref("item", loop_id, "entry_key"), ANY, inner)
                self.env.names[value] = Value(Ref("item", loop_id, "entry_value"), ANY, inner)

            self._pending_nodes.append(helper)
            return ref, "dict", parallelism, bind
        self._pending_nodes.append(helper)
        return ref, ANY, parallelism, self._binder(names[0], Ref("item", loop_id), ANY)

    def _pair(self, target) -> list[str]:
        if isinstance(target, (cst.Tuple, cst.List)) and len(target.elements) == 2:
            names = [e.value.value for e in target.elements if isinstance(e.value, cst.Name)]
            if len(names) == 2:
                return names
        self.refuse(target, "a loop over .items() takes two plain names", "for key, value in d.items(): (unpack the "
                                                                             "value further inside a step)")
        return []

    def _items_step(self, node, owner: Value, method: str, scope: Scope) -> Expression:
        code = {
            "items": "items = [{'entry_key': k, 'entry_value': v} for k, v in mapping.items()]\n",
            "keys": "items = list(mapping)\n",
            "values": "items = list(mapping.values())\n",
        }[method]
        return self.computed(node, code, {"mapping": replace(owner, type="dict" if owner.ref.kind != "task"
                                                                         else owner.type)},
                             (Output("items", "list"),), f"list_{method}")


def _known_items(text: str, tree: ast.Expression, constants: dict[str, object], reads: int) -> list | None:
    """The items of a loop source that reads only constants, when listing them now is quick."""
    if len(constants) != reads:
        return None
    body = tree.body
    if isinstance(body, ast.Call) and isinstance(body.func, ast.Name) and body.func.id == "range":
        ok, made = expressions.fold(text, constants)  # a range object: its length is known without listing it
        return list(made) if ok and isinstance(made, range) and len(made) <= 10_000 else None
    if not expressions.foldable(tree, constants):
        return None
    ok, made = expressions.fold(f"list({text})", constants)
    return made if ok and isinstance(made, list) else None


def _static_items(items: list) -> bool:
    """Items KFP can loop over as they are written: a non-empty list of ints, floats, strs or bools,
    all of one type (ints and floats mix as floats)."""
    kinds = {type_of_value(item) for item in items}
    return bool(items) and kinds <= set(PRIMITIVES) and len(kinds) == 1
