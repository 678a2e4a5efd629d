"""Is an ONNX graph wired? Every value a node reads and every graph output must come from
somewhere (a graph input, an initializer, a node), or the importer would go looking for it and
report nonsense ("depends on the token data"). Checked before anything else reads the graph.
"""

from __future__ import annotations

import os

import onnx

from irtool.errors import IrtoolError


def check_wiring(model: onnx.ModelProto, path: str | os.PathLike[str]) -> None:
    """Nodes in topological order (as ONNX requires), each reading only values defined before
    it; every graph output produced. A cycle is caught here too."""
    g = model.graph
    defined = {i.name for i in g.input} | {t.name for t in g.initializer}
    produced_later = {o for n in g.node for o in n.output if o}
    for node in g.node:
        for name in node.input:
            if name and name not in defined:
                what = ("is produced only by a later node (the nodes are not in topological "
                        "order, or form a cycle)" if name in produced_later else
                        "is provided by no node, initializer or graph input (a missing "
                        "initializer?)")
                raise IrtoolError(f"'{path}': node '{node.name or node.op_type}' reads "
                                  f"'{name}', which {what}: the ONNX file is broken; export it "
                                  "again")
        defined.update(o for o in node.output if o)
    for out in g.output:
        if out.name not in defined:
            raise IrtoolError(f"'{path}': the graph output '{out.name}' is produced by no node: "
                              "the ONNX file is broken; export it again")
