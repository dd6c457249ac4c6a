"""The cluster template: `build_template(spec, target)` runs the builders in order, `render`
serialises it, and `python -m dlcfn.blueprint.render DIR` writes DIR/dlcfn-cluster.{json,yaml}
(the default rendering, `make templates`).

Target.MOTO differs from Target.AWS in four places only, three where moto cannot take the AWS
form: the default zone is "<region>a" instead of `Select(0, GetAZs(""))` (moto answers GetAZs
with us-east-1's zones), the WaitCondition is left out (moto does not model it), and the AMI's
SSM parameter defaults to an Amazon Linux one (moto's SSM has no Deep Learning AMI parameters);
and one for the local cluster, whose hosts already run dlcfn's Python with MXNet: the framework
package lists default to empty (its nodes install nothing unless asked).

Other moto gaps need no variant, the resources are simply not modelled there: SNS
subscriptions and SecurityGroupEgress are skipped, and instances get no public IP (the public
outputs are absent).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from troposphere import Template

from dlcfn.blueprint.compute import add_compute
from dlcfn.blueprint.discovery import add_discovery
from dlcfn.blueprint.iam import add_iam
from dlcfn.blueprint.network import add_network
from dlcfn.blueprint.outputs import add_outputs
from dlcfn.blueprint.params import add_conditions, add_parameters, add_rules
from dlcfn.blueprint.security import add_security
from dlcfn.blueprint.storage import add_storage
from dlcfn.blueprint.target import Target
from dlcfn.spec.cluster import ClusterSpec

__all__ = ["Target", "build_template", "render", "template_dict"]
TEMPLATE_NAME = "dlcfn-cluster"
FORMATS = ("json", "yaml")


def build_template(spec: ClusterSpec, target: Target = Target.AWS) -> Template:
    t = Template(Description="dlcfn deep-learning cluster: master + worker Auto Scaling group, EFS, SQS discovery")
    t.set_version("2010-09-09")
    add_parameters(t, spec, target)
    add_rules(t)
    add_conditions(t)
    add_network(t, target)
    add_security(t)
    add_storage(t)
    add_discovery(t, target)
    add_iam(t)
    add_compute(t)
    add_outputs(t)
    return t


def template_dict(spec: ClusterSpec, target: Target = Target.AWS) -> dict:
    return build_template(spec, target).to_dict()


def render(spec: ClusterSpec, target: Target = Target.AWS, fmt: str = "json") -> str:
    """The template as text: compact JSON with sorted keys (what create_stack takes: its
    TemplateBody limit is 51,200 bytes), or YAML (short intrinsic forms, for reading)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    t = build_template(spec, target)
    if fmt == "yaml":
        return str(t.to_yaml(clean_up=True))
    return json.dumps(t.to_dict(), separators=(",", ":"), sort_keys=True) + "\n"


def write_templates(directory: Path, spec: ClusterSpec | None = None) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    spec = spec or ClusterSpec()
    paths = []
    for fmt in FORMATS:
        path = directory / f"{TEMPLATE_NAME}.{fmt}"
        path.write_text(render(spec, Target.AWS, fmt))
        paths.append(path)
    return paths


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m dlcfn.blueprint.render DIR", file=sys.stderr)
        return 2
    for path in write_templates(Path(argv[0])):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
