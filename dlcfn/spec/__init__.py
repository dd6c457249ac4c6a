"""Input specs (ClusterSpec, JobSpec): schemas and semantic validators that report every finding at once."""
