"""dlcfn: stand up a deep-learning cluster on AWS with CloudFormation and train on it with MXNet."""

__version__ = "0.1.0"
