"""Which CloudFormation the template is rendered for: real AWS, or moto (the local stand-in).

The moto variant differs only where moto cannot take the AWS form (see render.py's docstring).
"""

from __future__ import annotations

import enum


class Target(enum.Enum):
    AWS = "aws"
    MOTO = "moto"
