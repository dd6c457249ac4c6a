"""Python sources shipped inside the template, minified so that the template stays under
CloudFormation's limits (Lambda inline code 4,096 bytes; create_stack TemplateBody 51,200 bytes).

Minifying is an ast round trip without docstrings and function annotations (nothing in the
shipped modules reads them at run time; dataclass fields keep theirs, they define the fields),
with one space per indent level: deterministic, and the code's AST is unchanged apart from
those (a test checks).
"""

from __future__ import annotations

import ast
import base64
import gzip


def minify(source: str) -> str:
    """`source` without docstrings or comments, one space per indent level."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.returns = None
            for arg in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs, node.args.vararg, node.args.kwarg):
                if arg is not None:
                    arg.annotation = None
    # ast.unparse indents by 4 and writes strings as one-line reprs, so every leading space is
    # indentation: one space per level keeps the code valid and smaller.
    lines = ast.unparse(tree).splitlines()
    return "".join(" " * ((len(ln) - len(ln.lstrip(" "))) // 4) + ln.lstrip(" ") + "\n" for ln in lines)


def packed(source: str) -> str:
    """base64(gzip(source)) wrapped at 76 columns, the form the node UserData unpacks."""
    blob = base64.b64encode(gzip.compress(source.encode(), mtime=0)).decode("ascii")
    return "\n".join(blob[i : i + 76] for i in range(0, len(blob), 76))
