"""boto3 wrappers for the AWS provider: sessions and error translation (session), the stack
lifecycle (stack) with its event tail and failure diagnosis (events), the cluster inventory built
from stack outputs, the worker group and EC2 (inventory), and the post-delete sweep (sweep).

Nothing here prints: progress is reported through callbacks so that the CLI decides how it looks.
"""
